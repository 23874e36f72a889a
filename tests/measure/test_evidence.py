"""Tests of bench.measure.evidence and bench.measure.sidecar: the header a benchmark measures, its sidecar on disk."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from bench import PROJECT_ROOT
from bench.errors import DataError
from bench.measure.evidence import SIMD_FLAGS, Transcript, command_line, evidence_header, write_evidence
from bench.measure.sidecar import PROVENANCE_FIELDS, provenance_gaps, read_provenance, sidecar_path, write_provenance

BENCHMARKS = sorted((PROJECT_ROOT / "tests" / "benchmarks").glob("*.py"))


@pytest.fixture(scope="module")
def header():
    return evidence_header("python tests/benchmarks/x.py --out y.txt", threads=1)  # a real calibration, once


def test_the_header_is_complete_provenance(header):
    assert set(PROVENANCE_FIELDS) <= header.keys()
    assert [gap for gap in provenance_gaps(header) if "dirty" not in gap] == []  # this checkout may be dirty
    assert set(header["cpu_flags"]) <= set(SIMD_FLAGS) and header["calibration"]["threads"] == 1
    assert header["calibration"]["matmul_gflops"] > 0  # the sweep's own unit (bench.measure.calibration)


def test_write_evidence_writes_the_file_and_its_sidecar(tmp_path, header):
    path = write_evidence(tmp_path / "deep" / "speed.txt", "1.5 s\n", header, rounds=3)
    assert path.read_text() == "1.5 s\n" and sidecar_path(path).name == "speed.txt.provenance.json"
    assert read_provenance(path) == {**header, "rounds": 3}


def test_no_sidecar_for_a_file_that_does_not_exist(tmp_path, header):
    with pytest.raises(DataError, match="does not exist"):
        write_provenance(tmp_path / "missing.csv", header)
    assert read_provenance(tmp_path / "missing.csv") is None  # no sidecar: nothing vouches for it


def test_an_unreadable_sidecar_is_one_line(tmp_path):
    sidecar_path(tmp_path / "a.csv").write_text("{not json")
    with pytest.raises(DataError, match=r"a\.csv\.provenance\.json is not valid JSON"):
        read_provenance(tmp_path / "a.csv")


def test_the_command_is_pasteable(monkeypatch):
    argv = ["tests/benchmarks/x.py", "eval.sets=[heldout,mlqa-r]", "model.query_prefix=", "a b"]
    assert shlex.split(command_line(argv)) == ["python", *argv]
    monkeypatch.setattr("sys.argv", argv)
    assert command_line() == command_line(argv)  # by default: this process's own
    assert command_line(["--lexical"], program="python -m bench.evaluate") == "python -m bench.evaluate --lexical"


def test_a_transcript_prints_and_keeps_the_same_lines(capsys):
    say = Transcript()
    say("a")
    say("b 1.0")
    assert capsys.readouterr().out == "a\nb 1.0\n" == say.text


@pytest.mark.parametrize("script", [p for p in BENCHMARKS if '"--out"' in p.read_text()], ids=lambda p: p.name)
def test_a_benchmark_that_writes_files_writes_their_provenance(script):
    """A benchmark's --out goes through the evidence helpers, and its docstring shows the command that writes it."""
    text = script.read_text()
    assert re.search(r"\bwrite_(evidence|provenance)\(", text), f"{script.name}: --out without a provenance sidecar"
    assert "--out" in text.split('"""')[1], f"{script.name}: its docstring's command does not write its output"


def test_every_evidence_writing_benchmark_takes_out():
    """Scripts that write no file (cls_init_anatomy: a diagnostic printout) are the only ones without --out."""
    assert [p.name for p in BENCHMARKS if '"--out"' not in p.read_text()] == ["cls_init_anatomy.py"]
