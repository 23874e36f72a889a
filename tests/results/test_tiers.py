"""Tests of bench.results.tiers: the tiers' block regenerates from their summary files; bench.report writes it."""

from __future__ import annotations

import json

from bench.report import main as report_main
from bench.results.readme_sync import read_block
from bench.results.tiers import tier_summary, tiers_block
from bench.measure.sidecar import sidecar_path

FAST = "python -m pytest --tier-report results/tests/fast.json"
SLOW = "python -m pytest -m slow --tier-report results/tests/slow.json"
PROVENANCE = {"git_commit": "8b68412376baa7e4a7c38f438c8860df71d851d6", "git_dirty": False, "cpu_model": "AMD EPYC",
              "calibration": {"matmul_gflops": 186.48}, "command": FAST}  # fmt: skip


def write_summary(directory, name: str, markexpr: str, counts: dict, wall_s: float, provenance: dict = PROVENANCE):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(tier_summary(markexpr, counts, wall_s, exit_status=0)))
    sidecar_path(path).write_text(json.dumps(provenance))


def test_a_summary_names_its_tier_from_the_marker_expression_and_counts_every_outcome():
    summary = tier_summary("not slow", {"passed": 544, "skipped": 3, "deselected": 41}, 219.96, 0)
    assert summary["tier"] == "fast" and tier_summary("slow", {}, 1, 0)["tier"] == "slow"
    assert summary["counts"] == {"passed": 544, "failed": 0, "skipped": 3, "error": 0, "xfailed": 0, "xpassed": 0}
    assert summary["wall_s"] == 220.0


def test_the_block_regenerates_from_sample_summary_files(tmp_path):
    directory = tmp_path / "tests"
    slow = {**PROVENANCE, "git_dirty": True, "command": SLOW}
    write_summary(directory, "slow.json", "slow", {"passed": 41}, 522.4, slow)
    write_summary(directory, "fast.json", "not slow", {"passed": 544, "skipped": 3}, 220.0)
    (directory / "notes.json").write_text('{"not": "a tier"}')  # other JSON in the directory is not a tier
    rows = tiers_block(directory).splitlines()[-2:]  # fast first, whatever the file order
    assert rows == [
        f"| fast | `{FAST}` | 544 | 0 | 3 | 0 | 3 min 40 s | 8b68412 | AMD EPYC, 186 GFLOP/s |",
        f"| slow | `{SLOW}` | 41 | 0 | 0 | 0 | 8 min 42 s | 8b68412 (dirty) | AMD EPYC, 186 GFLOP/s |",
    ]


def test_no_summary_yet_says_how_to_make_one(tmp_path):
    assert tiers_block(tmp_path / "tests").startswith("No tier summary in ")


def test_bench_report_rewrites_a_documents_tier_block(tmp_path):
    directory = tmp_path / "tests"
    write_summary(directory, "fast.json", "not slow", {"passed": 2}, 5.0)
    document = tmp_path / "testing.md"
    document.write_text("intro\n<!-- generated:tiers:tests -->\nold\n<!-- /generated:tiers:tests -->\nend\n")
    assert report_main([str(directory), "--readme", str(document)]) == 0
    assert read_block(document.read_text(), "tiers:tests") == tiers_block(directory)
    assert not (directory / "report.md").exists()  # a tier directory has a block, not a sweep's report
