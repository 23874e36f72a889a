"""Executes notebooks/scaling_analysis.ipynb against a synthetic results set, so the notebook cannot rot.

The `python3` kernel needs no installation step: with ipykernel importable, jupyter_client always
offers its native `python3` kernel spec, started with this interpreter (sys.executable), so a
fresh virtualenv with only the pip packages is enough.
"""

from __future__ import annotations

import pytest
from test_plot import write_synthetic_results  # the shared synthetic results set

from bench import PROJECT_ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = PROJECT_ROOT / "notebooks" / "scaling_analysis.ipynb"


def _run(results_dir, monkeypatch) -> "nbformat.NotebookNode":
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(results_dir))  # the kernel inherits this environment
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    return client.execute()


def _text(notebook) -> str:
    chunks = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            chunks.append(output.get("text", ""))
            chunks += [str(v) for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(chunks)


def test_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_runs_on_synthetic_results(tmp_path, monkeypatch):
    results_dir = write_synthetic_results(tmp_path, datasets=("heldout",))  # one dataset keeps it fast
    executed = _run(results_dir, monkeypatch)
    text = _text(executed)
    assert "34 runs, 32 usable" in text
    assert "crosslingual-L11-s2" in text  # the failed run is listed
    assert "## What each added language costs" in text and "k ±" not in text  # the fits the report and figures use
    images = [o for c in executed.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 6
    assert (results_dir / "plots" / "wall_time.png").is_file()
