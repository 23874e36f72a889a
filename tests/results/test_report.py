"""Tests for bench.report: the Markdown report holds the configuration, tables, fits, failures and figures."""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest
from test_plot import write_synthetic_results  # the shared synthetic results set

from bench import PROJECT_ROOT
from bench.report import main
from bench.results.figures import PLOTS_DIR
from bench.results.markdown import REPORT_FILE, fmt, growth_block, markdown_table, write_report
from bench.results.store import RESULTS_FILE


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    results_dir = write_synthetic_results(tmp_path_factory.mktemp("full"))
    path = write_report(results_dir)
    return results_dir, path.read_text(encoding="utf-8")


def test_report_sections(full_report):
    _, text = full_report
    for heading in ("## Configuration", "## Environment", "## Results by strategy", "## What each added language costs",
                    "## Unsuccessful runs (2)", "## Figures"):  # fmt: skip
        assert heading in text
    assert "| strategies | monolingual, crosslingual, hybrid, mbert |" in text
    assert "| language counts L | 2, 4, 8, 11 |" in text
    assert "| CPU | Synthetic CPU @ 2GHz |" in text and "abc1234" in text


def test_report_tables_fits_and_failed_runs(full_report):
    _, text = full_report
    assert "| strategy | L=2 | L=4 | L=8 | L=11 |" in text
    assert re.search(r"\| hybrid \| [\d.]+ \[[\d.]+–[\d.]+\] \|", text)  # median [min–max] cells
    assert "scaling exponents" not in text and "k ±" not in text  # the answer's fits only: cost per added language
    failed_row = "| crosslingual-L11-s2 | crosslingual | 11 | 2 | oom | OutOfMemoryError | CPU out of memory at step 3 |"
    assert failed_row in text
    assert "| interrupted-early |  |  |  | interrupted | KeyboardInterrupt |  |" in text
    assert "L=11.0" not in text  # a failed run without L must not turn L into floats


def test_report_embeds_existing_figures_by_relative_link(full_report):
    results_dir, text = full_report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert "plots/wall_time.png" in links and "plots/cost_quality_heldout.png" in links
    assert all((results_dir / link).is_file() for link in links)


def test_report_predicted_only_and_single_seed(tmp_path):
    results_dir = write_synthetic_results(tmp_path, measured=False, predicted=True, failed=False)
    text = write_report(results_dir).read_text(encoding="utf-8")
    assert "hybrid (predicted)" in text and "## Unsuccessful runs\n\nNone." in text
    assert "`wall_s`" not in text and (results_dir / PLOTS_DIR / "memory_breakdown.png").is_file()


def test_markdown_table_and_fmt():
    table = markdown_table(["a", "b"], [[1, "x|y"], [None, float("nan")]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x\\|y |", "|  |  |"]
    assert [fmt(v) for v in (12345.6, 123.4, 12.34, 1.234, 0.1234, 0.001234, float("nan"))] == [
        "12,346", "123", "12.3", "1.23", "0.123", "0.0012", "–",
    ]  # fmt: skip


def test_main_writes_report_and_missing_dir_is_exit_2(tmp_path, capsys):
    results_dir = write_synthetic_results(tmp_path / "r", seeds=(0,), languages=(2, 4), datasets=())
    assert main([str(results_dir)]) == 0
    assert (results_dir / REPORT_FILE).is_file()
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "missing")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_cli_subprocess_missing_directory(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.report", str(tmp_path / "nope")], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1


def _target_runs(values: list[float | None]):
    import pandas as pd

    return pd.DataFrame({"strategy": "monolingual", "source": "measured", "n_languages": 2, "seed": range(len(values)),
                         "target_value": 0.7, "train_s_to_target": values})  # fmt: skip


def test_a_run_that_never_reached_the_target_is_counted_not_dropped():
    from bench.results.markdown import metric_table

    def cell(values):
        _, table = metric_table(_target_runs(values), "train_s_to_target", "seconds", "", ["monolingual"], censored=True)
        return table.splitlines()[-1].split(" | ")[1].rstrip(" |")

    assert cell([22.5, 44.0, None]) == "44.0 (2/3 reached: 22.5–44.0)"  # dropping it would give 33.2
    assert cell([22.5, None]) == "not reached (1/2 reached: 22.5)"  # the median run never got there
    assert cell([None, None, None]) == "not reached (0/3)"
    assert cell([10.0, 20.0, 30.0]) == "20.0 [10.0–30.0]"


def test_growth_section_reports_cost_per_added_language(full_report):
    _, text = full_report
    assert "## What each added language costs" in text
    assert re.search(r"\| hybrid \| [\w-]* \| (flat \[|[+-])", text)


def test_the_time_breakdown_accounts_for_the_whole_sweep():
    import pandas as pd

    from bench.results.markdown import time_breakdown, time_section

    sweeps = [{"order": ["a", "b"]}, {"phases_s": {"planning": 2.0, "calibration": 3.0, "calibration_end": 3.0, "reference_levels": 10.0,
                                                   "vocabularies": 1.0, "runs": 100.0, "report": 6.0}, "startup_s": 4.0, "wall_s": 125.0}]
    rows = pd.DataFrame({"run_id": ["a", "b", "old"], "wall_s": [40.0, 40.0, 999.0], "data_s": [2.0, 2.0, 9.0],
                         "tokenizer_s": [1.0, 1.0, 9.0], "model_build_s": [1.0, 1.0, 9.0], "train_s": [30.0, 30.0, 9.0],
                         "eval_s": [5.0, 5.0, 9.0]})  # fmt: skip
    parts = dict(time_breakdown(rows, sweeps))
    assert parts["runs: process start-up and launch"] == 20.0  # 100 s of runs phase, 80 s inside the two runs
    assert parts["runs: training"] == 60.0 and parts["runs: other (inside a run, between stages)"] == 2.0  # "old" is not this sweep's
    assert parts["machine calibration (start and end)"] == 6.0
    assert sum(parts.values()) == 4.0 + 125.0  # start-up plus the sweep's own wall time, nothing counted twice
    assert "| total | 129.0 | 100% |" in time_section(rows, sweeps)
    assert time_breakdown(rows, [{"order": ["a"]}]) == []  # an unfinished sweep has no breakdown


def _two_policy_sweep(tmp_path, seeds: int = 3):
    """A results table that can fool a block writer: two vocabulary policies, `seeds` seeds, one missing cell."""
    rows = []
    for policy, per_language in (("shared-all", 0.0), ("selected-scaled", 3.0 * 2**20)):
        for seed in range(seeds):
            for n in (2, 4, 8, 11):
                if (policy, seed, n) == ("selected-scaled", 0, 8):
                    continue  # a missing cell: the count must not shrink nor the fit break
                rows.append({"run_id": f"{policy}-{seed}-{n}", "status": "ok", "strategy": "hybrid",
                             "tokenizer_policy": policy, "seed": seed, "n_languages": n, "model": "tiny",
                             "cpu_model": "Test CPU", "mixed_precision": "no",
                             "peak_tensor_bytes": 100 * 2**20 + per_language * n + (seed - 1) * 2**18 * n / 11})
    pd.DataFrame(rows).to_parquet(tmp_path / RESULTS_FILE)
    return tmp_path


def test_the_growth_block_counts_seeds_per_point_not_rows_per_strategy(tmp_path):
    """Two vocabulary policies of 3 seeds each are 3 seeds per point (the block once said 6)."""
    block = growth_block(_two_policy_sweep(tmp_path))
    assert "3 seeds per point" in block and "6 seeds" not in block


def test_the_growth_block_gives_the_hand_computed_slope_and_t_interval(tmp_path):
    block = growth_block(_two_policy_sweep(tmp_path))
    # Per seed, the growing vocabulary's slope is 3 MiB + (seed - 1)·0.25/11 MiB: mean 3 MiB, sd 0.25/11 MiB,
    # 95% t over 3 seeds: 3 ± 4.303 · (0.25/11) / √3 = 3 ± 0.0565 MiB.
    row = next(line for line in block.splitlines() if "selected-scaled" in line)
    assert "+3.00 MiB [+2.94, +3.06]" in row
