"""Where an evidence file's provenance lives: a sidecar `<file>.provenance.json` beside it, whatever its format.

One convention for every file a benchmark or a summary writes (JSON, text, CSV, Markdown, parquet): the
file keeps its own format and readers, and its provenance (bench.measure.evidence.evidence_header: commit,
tree state, code tree, CPU and its flags, calibration, the exact command, when) sits in the sidecar.
Sweep rows carry theirs column by column instead. Reading and checking a sidecar needs no torch, so
reports that only read files stay light.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench.errors import DataError

SIDECAR_SUFFIX = ".provenance.json"
PROVENANCE_FIELDS = ("git_commit", "git_dirty", "code_tree", "cpu_model", "cpu_flags", "calibration", "command",
                     "created_at")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def sidecar_path(path: Path | str) -> Path:
    """`path`'s provenance sidecar: the same name with `.provenance.json` appended (a.csv -> a.csv.provenance.json)."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def is_sidecar(path: Path | str) -> bool:
    return Path(path).name.endswith(SIDECAR_SUFFIX)


def write_provenance(path: Path | str, header: dict, **extra) -> Path:
    """Write the sidecar of the evidence file at `path`: `header` plus `extra` (settings a reader needs,
    a second calibration). The file must exist already: a sidecar of nothing would vouch for nothing."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"cannot write provenance for {path}: the file does not exist (write it first)")
    target = sidecar_path(path)
    target.write_text(json.dumps({**header, **extra}, indent=1) + "\n")
    return target


def read_provenance(path: Path | str) -> dict | None:
    """The provenance of the evidence file at `path`, None where it has no sidecar."""
    target = sidecar_path(path)
    if not target.is_file():
        return None
    try:
        record = json.loads(target.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{target} is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise DataError(f"{target} must hold a JSON object, got {type(record).__name__}")
    return record


def provenance_gaps(record: dict) -> list[str]:
    """What keeps `record` from being complete provenance, empty when nothing does. A dirty tree counts:
    its numbers cannot be reproduced from the commit they name."""
    gaps = [f"no {field}" for field in PROVENANCE_FIELDS if record.get(field) in (None, "")]
    commit = record.get("git_commit")
    if commit and not (isinstance(commit, str) and _COMMIT.fullmatch(commit)):
        gaps.append(f"git_commit {commit!r} is not a full commit hash")
    if record.get("git_dirty") is True:
        gaps.append("measured on a dirty tree (git_dirty: true)")
    if record.get("cpu_flags") is not None and not isinstance(record["cpu_flags"], list):
        gaps.append("cpu_flags is not a list")
    calibration = record.get("calibration")
    gflops = calibration.get("matmul_gflops") if isinstance(calibration, dict) else None
    if calibration is not None and not isinstance(gflops, (int, float)):
        gaps.append("calibration has no matmul_gflops")
    return gaps
