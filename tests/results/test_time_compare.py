"""Tests of bench.results.time_compare and bench.timecheck: a planted slowdown is found, identical runs do not flap."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.errors import BenchError
from bench.results.schema import RunRecord, records_to_table
from bench.results.store import RESULTS_FILE, write_table_atomic
from bench.results.time_compare import calibration_gflops, compare_steps, matched_steps


def runs(rng, n_configs=12, steps=60, factor=1.0, noise=0.08):
    """Per configuration a base step time (0.1-1 s) and lognormal step noise, times `factor`."""
    bases = np.linspace(0.1, 1.0, n_configs)
    return [(f"c{i}", None, base * factor * rng.lognormal(0, noise, steps)) for i, base in enumerate(bases)]


def pairs(rng, factor_b=1.0, run_noise=0.03, **kwargs):
    """Matched (A, B) samples: B's runs are other processes (a run-level offset each) of the same configurations."""
    a, b = runs(rng, **kwargs), runs(rng, factor=factor_b, **kwargs)
    return [(key, sa * rng.lognormal(0, run_noise), sb * rng.lognormal(0, run_noise)) for (key, _, sa), (_, _, sb) in zip(a, b)]


def test_a_planted_20_percent_slowdown_is_found():
    result = compare_steps(pairs(np.random.default_rng(1), factor_b=1.2), replicates=500)
    assert result.verdict == "slower"
    assert 1.12 < result.ratio < 1.28 and result.ci[0] > 1.0
    assert result.min_detectable_slowdown < 0.2  # the design could see it


def test_identical_runs_do_not_flap():
    verdicts = [compare_steps(pairs(np.random.default_rng(seed)), replicates=300, seed=seed).verdict for seed in range(20)]
    assert verdicts.count("slower") + verdicts.count("faster") <= 3, verdicts  # 5% nominal, 20 tries
    assert verdicts.count("no change") >= 17


def test_calibration_normalises_a_faster_machine():
    rng = np.random.default_rng(3)
    same = pairs(rng, factor_b=0.5)  # B's machine is twice as fast: half the seconds...
    result = compare_steps(same, scale_a=100.0, scale_b=200.0, replicates=300)  # ...and twice the calibration
    assert result.verdict == "no change" and 0.93 < result.ratio < 1.07


def test_directories_are_matched_by_config_and_normalised_by_their_sweeps(tmp_path):
    def write(directory, gflops, factor):
        directory.mkdir()
        (directory / "sweeps.jsonl").write_text(json.dumps({"calibration": {"matmul_gflops": gflops}}) + "\n")
        rng = np.random.default_rng(0)
        records = [RunRecord(run_id=f"r{i}", config_hash=f"h{i}", step_times_s=list(0.2 * factor * rng.lognormal(0, 0.05, 40)))
                   for i in range(6)]  # fmt: skip
        records.append(RunRecord(run_id="only-here", config_hash=f"only-{directory.name}", step_times_s=[1.0, 1.0]))
        write_table_atomic(records_to_table(records), directory / RESULTS_FILE)

    write(tmp_path / "a", 100.0, 1.0)
    write(tmp_path / "b", 100.0, 1.3)
    from bench.timecheck import main

    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--replicates", "300"]) == 1  # slower: exit 1
    assert calibration_gflops(tmp_path / "a") == 100.0
    assert len(matched_steps(pd.read_parquet(tmp_path / "a" / RESULTS_FILE), pd.read_parquet(tmp_path / "b" / RESULTS_FILE))) == 6
    assert main([str(tmp_path / "a"), str(tmp_path / "a"), "--replicates", "300"]) == 0


def test_nothing_to_compare_is_one_line():
    with pytest.raises(BenchError, match="no configuration was measured on both sides"):
        compare_steps([])
