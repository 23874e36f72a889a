"""Tests of bench.results.targets: censored runs count, never drop out of the median."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from bench.results.claims import parse_claims
from bench.results.targets import censored_median, cost_cell, cost_to_targets, first_reaching

CLAIMS = {"experiment": "t", "arms": {"a": {"strategy": "x"}, "b": {"strategy": "y"}, "c": {"strategy": "z"}},
          "sets": {"s": "S"}, "targets": {"map_multi": [0.5, 0.7], "rank_distance": [50]},
          "claims": [{"id": "H", "kind": "difference", "a": "a", "b": "b", "metric": "map_multi", "expect": "greater"}]}  # fmt: skip


def row(strategy: str, seed: int, multi: list[float], distance: list[float]) -> dict:
    points = [{"map_multi": m, "rank_distance": d} for m, d in zip(multi, distance)]
    steps = [25.0 * (i + 1) for i in range(len(points))]
    return {"run_id": f"{strategy}{seed}", "status": "ok", "strategy": strategy, "seed": seed,
            "curve_summaries": json.dumps(points), "curve_samples": [32 * s for s in steps],
            "curve_train_s": [10.0 * s for s in steps]}  # fmt: skip


def test_median_counts_censored_runs_as_not_reached():
    assert censored_median([1.0, 2.0, math.inf]) == 2.0
    assert censored_median([1.0, math.inf, math.inf]) == math.inf  # dropping the censored runs would say 1.0
    assert censored_median([1.0, 3.0, math.inf, math.inf]) == math.inf
    assert censored_median([1.0, 3.0]) == 2.0


def test_first_reaching_follows_the_metric_direction():
    assert first_reaching([0.4, 0.55, 0.8], 0.5, "map_multi") == 1
    assert first_reaching([90.0, 60.0, 40.0], 50, "rank_distance") == 2
    assert first_reaching([0.4, None], 0.5, "map_multi") is None


def test_cost_table_reports_k_of_n_and_censored_medians():
    results = pd.DataFrame([row("x", 0, [0.45, 0.6, 0.72], [80, 45, 30]), row("x", 1, [0.52, 0.6, 0.65], [90, 70, 60]),
                            row("x", 2, [0.3, 0.4, 0.45], [95, 94, 93]), row("y", 0, [0.6, 0.75, 0.8], [40, 30, 20])])  # fmt: skip
    table = cost_to_targets(parse_claims(CLAIMS), results).set_index(["arm", "metric", "target"])
    a_half = table.loc[("a", "map_multi", 0.5)]
    assert (a_half.n_runs, a_half.k_reached, a_half.median_pairs) == (3, 2, 32 * 50.0)  # reached at 25 and 50 steps; one never
    assert a_half.reached_pairs == [32 * 25.0, 32 * 50.0]
    a_high = table.loc[("a", "map_multi", 0.7)]
    assert (a_high.k_reached, a_high.median_pairs) == (1, math.inf)  # 1 of 3: the median run never got there
    assert cost_cell(a_high) == "not reached (1/3)"
    assert table.loc[("a", "rank_distance", 50.0)].k_reached == 1  # lower is better for rank distance
    b_half = table.loc[("b", "map_multi", 0.5)]
    assert cost_cell(b_half) == "800 pairs, 250 s (1/1)"
    assert cost_cell(table.loc[("c", "map_multi", 0.5)]) == "not run"


def test_seconds_come_from_quiet_runs_only():
    """Pairs are the machine's no matter what; a run that trained beside another process has no comparable seconds."""
    slow = row("x", 1, [0.6, 0.7], [40, 30]) | {"curve_train_s": [900.0, 1800.0], "contended": True}
    results = pd.DataFrame([row("x", 0, [0.6, 0.7], [40, 30]) | {"contended": False}, slow])
    table = cost_to_targets(parse_claims(CLAIMS), results).set_index(["arm", "metric", "target"])
    half = table.loc[("a", "map_multi", 0.5)]
    assert (half.median_pairs, half.median_train_s, half.n_quiet) == (800.0, 250.0, 1)  # 900 s of the contended run left out
    assert cost_cell(half) == "800 pairs, 250 s in 1 quiet run (2/2)"
    only_contended = cost_to_targets(parse_claims(CLAIMS), pd.DataFrame([slow])).set_index(["arm", "metric", "target"])
    assert cost_cell(only_contended.loc[("a", "map_multi", 0.5)]) == "800 pairs, seconds contended (1/1)"


def test_targets_are_validated():
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="targets.map_multy: unknown metric"):
        parse_claims(CLAIMS | {"targets": {"map_multy": [0.5]}})
    with pytest.raises(ConfigError, match="targets.map_multi: must be a non-empty list of numbers"):
        parse_claims(CLAIMS | {"targets": {"map_multi": "0.5"}})
