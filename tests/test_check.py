"""Tests of bench.check: the committed baseline holds, a memory increase fails naming the row, bad baselines exit 2."""

from __future__ import annotations

import json
import re

import pytest

from bench import PROJECT_ROOT, check
from bench.results import baseline
from bench.check import measure
from bench.results.baseline import CheckConfig, Comparison, compare, load_baseline
from bench.config import plan_runs
from bench.errors import BenchError
from bench.measure.sidecar import read_provenance
from bench.strategies import strategy_names

BASELINE = PROJECT_ROOT / "results" / "baselines" / "memory-check.json"
SUBSET = ["strategy=monolingual,hybrid", "languages=2"]  # two real runs: enough for the pass and a ratio


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """The subset measured once, for real (child processes through `python -m bench.run`)."""
    results_dir = tmp_path_factory.mktemp("check-runs")
    planned = plan_runs(check.CHECK_CONFIG, [*SUBSET, f"results.dir={results_dir}"], sweep=True)
    return measure(planned, order_seed=0)


@pytest.fixture
def reuse(measured, monkeypatch):
    """Let `check.main` compare the module's measurements instead of running them again."""
    monkeypatch.setattr(check, "measure", lambda planned, order_seed: measured)
    return measured


def run_main(argv, capsys) -> tuple[int, str]:
    try:
        code = check.main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_unmodified_tree_passes_against_the_committed_baseline(reuse, capsys):
    assert all(not isinstance(v, str) for v in reuse.values()), reuse  # the runs themselves succeeded
    code, out = run_main(SUBSET, capsys)
    assert code == 0, out
    assert "memory check passed" in out
    assert re.search(r"hybrid-L2 +tensor_peak_vs_monolingual .* ok", out)  # the same-run ratio is gated


def test_a_memory_increase_fails_with_the_row_named(reuse, capsys, tmp_path):
    doctored = json.loads(BASELINE.read_text())
    row = doctored["devices"]["cpu"]["runs"]["hybrid-L2"]
    row["peak_tensor_bytes"] = int(row["peak_tensor_bytes"] / 1.02)  # as if memory had grown by 2%
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(doctored))
    code, out = run_main([*SUBSET, "--baseline", str(path)], capsys)
    assert code == 1
    assert "memory check FAILED for hybrid-L2: hybrid-L2 peak_tensor_bytes" in out
    assert "monolingual-L2 peak" not in out.splitlines()[-1]


@pytest.mark.slow
def test_a_larger_batch_fails_the_check_for_real(capsys):
    code, out = run_main(["strategy=hybrid", "languages=2", "train.batch_size=24"], capsys)
    assert code == 1
    assert "FAILED for hybrid-L2" in out and "configuration differs" in out


@pytest.mark.slow
def test_the_whole_check_passes(capsys):
    code, out = run_main([], capsys)
    assert code == 0, out


def test_update_writes_a_baseline_the_next_check_passes(reuse, capsys, tmp_path):
    path = tmp_path / "new.json"
    code, out = run_main([*SUBSET, "--baseline", str(path), "--update"], capsys)
    assert code == 0 and "baseline updated" in out
    data = load_baseline(path, "cpu")
    assert set(data["devices"]["cpu"]["runs"]) == {"monolingual-L2", "hybrid-L2"}
    provenance = read_provenance(path)  # the baseline is evidence: its sidecar names the command that wrote it
    assert provenance["command"] == f"python -m bench.check {' '.join(SUBSET)} --baseline {path} --update"
    assert provenance["calibration"]["matmul_gflops"] > 0 and "cpu_flags" in provenance
    assert run_main([*SUBSET, "--baseline", str(path)], capsys)[0] == 0


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        ("{not json", "not valid JSON"),
        ('{"format": "something else"}', "is not a version-1"),
        ('{"format": "hybrid-batch-bench memory baseline", "version": 1, "devices": {"cpu": {"runs": {"x": {}}}}}', "malformed"),
        ('{"format": "hybrid-batch-bench memory baseline", "version": 1, "devices": {}}', "has no cpu section"),
    ],
)
def test_a_missing_or_malformed_baseline_is_one_line_and_exit_2(content, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(check, "measure", lambda *a: pytest.fail("runs started despite a bad baseline"))
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    code, out = run_main([*SUBSET, "--baseline", str(path)], capsys)
    assert code == 2
    assert out.count("\n") == 1 and out.startswith("error: ") and message in out


def test_results_dir_is_the_checks_own(capsys):
    code, out = run_main(["results.dir=/tmp/elsewhere"], capsys)
    assert code == 2 and "--results-dir" in out


# ---------------------------------------------------------------- comparison rules


def test_tensor_figures_are_gated_both_ways_and_rss_only_upwards():
    tight = Comparison("c", "peak_tensor_bytes", 1000, 990, 0.005)
    assert tight.failed and tight.verdict == "FAIL"
    assert not Comparison("c", "peak_rss_bytes", 1000, 500, 0.25, two_sided=False).failed
    assert Comparison("c", "peak_rss_bytes", 1000, 1300, 0.25, two_sided=False).failed
    assert Comparison("c", "peak_grad_bytes", 0, 4, 0.005).failed  # from zero is a change, not +0%
    assert Comparison("c", "wall_s", 1.0, 9.0).verdict == "info"  # time is never gated


def test_a_missing_baseline_row_fails_and_ratios_come_from_the_same_run():
    rows_now = {"monolingual-L2": {"peak_tensor_bytes": 100}, "hybrid-L2": {"peak_tensor_bytes": 150}}
    assert baseline._ratio(rows_now, "hybrid-L2", "monolingual") == 1.5
    assert baseline._ratio(rows_now, "monolingual-L2", "monolingual") is None
    assert baseline._ratio(rows_now, "monolingual-L2", "hybrid") == 1 / 1.5  # the reference is configuration, not code
    tolerances = CheckConfig(baseline="x", tensor_tolerance=0.005, rss_tolerance=0.25, ratio_tolerance=0.02,
                             reference_strategy="monolingual")  # fmt: skip
    failed = compare({}, {"hybrid-L2": "failed: RuntimeError: boom"}, tolerances)
    assert failed[0].failed and "boom" in failed[0].note


def test_a_configuration_hash_mismatch_fails_naming_the_row(reuse, capsys, tmp_path):
    doctored = json.loads(BASELINE.read_text())
    doctored["devices"]["cpu"]["runs"]["hybrid-L2"]["config_hash"] = "0" * 16
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(doctored))
    code, out = run_main([*SUBSET, "--baseline", str(path), "--update"][:-1], capsys)
    assert code == 1
    assert "memory check FAILED for hybrid-L2: hybrid-L2 config_hash" in out


def test_committed_baseline_is_well_formed():
    data = load_baseline(BASELINE, "cpu")
    runs = data["devices"]["cpu"]["runs"]
    assert {k.split("-L")[0] for k in runs} == set(strategy_names())  # every registered strategy is gated
    assert len({k.split("-L")[1] for k in runs}) >= 2
    with pytest.raises(BenchError, match="no cuda section"):
        load_baseline(BASELINE, "cuda")
