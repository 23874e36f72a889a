"""Tests of tests/tier_report.py: `--tier-report FILE` writes a tier's counts, wall time and provenance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import tier_report

from bench.measure.sidecar import read_provenance

SAMPLE = """
import pytest

def test_ok():
    pass

def test_broken():
    assert False

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass

@pytest.mark.slow
def test_slow():
    pass
"""


@pytest.mark.parametrize(("source", "keyword"), [(pytest.Config.ArgsSource.ARGS, ""),
                                                 (pytest.Config.ArgsSource.TESTPATHS, "hybrid")])  # fmt: skip
def test_part_of_a_tier_is_refused(source, keyword):
    config = SimpleNamespace(getoption=lambda name: Path("fast.json"), args_source=source,
                             option=SimpleNamespace(keyword=keyword))  # fmt: skip
    with pytest.raises(pytest.UsageError, match="whole tier"):
        tier_report.pytest_configure(config)


def test_a_whole_tier_or_no_report_is_accepted():
    whole = SimpleNamespace(getoption=lambda name: Path("fast.json"), args_source=pytest.Config.ArgsSource.TESTPATHS,
                            option=SimpleNamespace(keyword=""))  # fmt: skip
    unasked = SimpleNamespace(getoption=lambda name: None, args_source=pytest.Config.ArgsSource.ARGS,
                              option=SimpleNamespace(keyword="x"))  # fmt: skip
    tier_report.pytest_configure(whole)
    tier_report.pytest_configure(unasked)


@pytest.mark.slow
def test_a_session_writes_its_counts_and_provenance(tmp_path):
    """A real pytest process over a sample suite (one pass, one failure, one skip, one deselected slow test)."""
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "pytest.ini").write_text('[pytest]\nmarkers =\n    slow: slow\naddopts = -m "not slow"\n')
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}  # where `-p tier_report` is found
    command = ["-m", "pytest", "-p", "tier_report", "-p", "no:cacheprovider", "--tier-report", "out/fast.json"]
    proc = subprocess.run([sys.executable, *command], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the failing sample test
    summary = json.loads((tmp_path / "out" / "fast.json").read_text())
    assert summary["tier"] == "fast" and summary["exit_status"] == 1 and summary["wall_s"] >= 0
    assert summary["counts"] == {"passed": 1, "failed": 1, "skipped": 1, "error": 0, "xfailed": 0, "xpassed": 0}
    provenance = read_provenance(tmp_path / "out" / "fast.json")
    assert provenance["command"] == "python -m pytest -p tier_report -p no:cacheprovider --tier-report out/fast.json"
    assert provenance["calibration"]["matmul_gflops"] > 0 and "cpu_flags" in provenance
