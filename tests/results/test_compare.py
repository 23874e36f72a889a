"""Paired comparisons of hybrid against the pure strategies, and the paper's claims, on synthetic runs."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.results.compare import claim_verdict, paired_difference, paired_differences, paper_pattern


def runs(offsets: dict[str, list[float]], metric: str = "eval_heldout_map_multi", base: float = 0.5) -> pd.DataFrame:
    rows = [{"strategy": s, "n_languages": 4, "seed": seed, metric: base + value} for s, values in offsets.items()
            for seed, value in enumerate(values)]  # fmt: skip
    return pd.DataFrame(rows)


def test_a_consistent_paired_gain_is_resolved_even_when_seeds_vary_a_lot():
    table = runs({"hybrid": [0.11, 0.31, 0.21], "monolingual": [0.10, 0.30, 0.20]})  # +0.01 on every seed
    diff = paired_difference(table, "eval_heldout_map_multi", 4, "hybrid", "monolingual")
    assert diff.mean == pytest.approx(0.01) and diff.low > 0 and diff.verdict() == "hybrid better"


def test_a_difference_inside_the_interval_is_not_resolved():
    table = runs({"hybrid": [0.12, 0.05, 0.20], "monolingual": [0.10, 0.10, 0.10]})
    diff = paired_difference(table, "eval_heldout_map_multi", 4, "hybrid", "monolingual")
    assert diff.low < 0 < diff.high and diff.verdict() == "not resolved"


def test_lower_is_better_metrics_flip_the_verdict():
    table = runs({"hybrid": [90.0, 91.0, 92.0], "monolingual": [100.0, 100.5, 102.0]}, "eval_heldout_rank_distance", 0.0)
    diff = paired_difference(table, "eval_heldout_rank_distance", 4, "hybrid", "monolingual")
    assert diff.mean < 0 and diff.verdict() == "hybrid better"
    assert claim_verdict(diff, "better") == "holds"


def test_only_paired_seeds_count_and_one_pair_resolves_nothing():
    table = runs({"hybrid": [0.2], "monolingual": [0.1, 0.1]})
    diff = paired_difference(table, "eval_heldout_map_multi", 4, "hybrid", "monolingual")
    assert diff.n_pairs == 1 and not diff.resolved and claim_verdict(diff, "not worse") == "not measured"


def test_paper_pattern_lists_every_claim_at_every_l():
    table = pd.concat([runs({"hybrid": [0.01, 0.02, 0.015], "monolingual": [0, 0, 0], "crosslingual": [0, 0, 0]}, f"eval_heldout_{m}")
                       for m in ("map_mono", "map_cross", "map_multi", "rank_distance")])  # fmt: skip
    table = table.groupby(["strategy", "n_languages", "seed"], as_index=False).first()
    pattern = paper_pattern(table, "heldout")
    assert len(pattern) == 4 and all(L == 4 for L, _, _ in pattern)
    verdicts = dict((claim, verdict) for _, claim, verdict in pattern)
    assert verdicts["hybrid at least as good as monolingual on multilingual mAP"] == "holds"
    assert verdicts["hybrid has a lower rank distance than monolingual"] == "contradicted"  # it is higher here
    assert len(paired_differences(table, ["eval_heldout_map_multi"])) == 2  # hybrid's declared rivals, at one L
    assert {(d.strategy, d.other) for d in paired_differences(table, ["eval_heldout_map_multi"])} == {
        ("hybrid", "monolingual"), ("hybrid", "crosslingual")}


def test_the_interval_is_students_t_not_normal():
    """Three seeds: the 97.5% t quantile with 2 degrees of freedom is 4.303, where a z interval would use 1.96
    (an interval less than half as wide). Planted bug: with 1.96 in place of the t quantile this test fails."""
    table = runs({"hybrid": [0.11, 0.33, 0.22], "monolingual": [0.10, 0.30, 0.20]})  # differences 0.01, 0.03, 0.02
    diff = paired_difference(table, "eval_heldout_map_multi", 4, "hybrid", "monolingual")
    half = 4.302652729911275 * 0.01 / 3**0.5  # sd of (0.01, 0.03, 0.02) is 0.01
    assert diff.mean == pytest.approx(0.02)
    assert (diff.low, diff.high) == (pytest.approx(0.02 - half, abs=1e-5), pytest.approx(0.02 + half, abs=1e-5))
    assert diff.low < 0  # with a z interval (half 0.0113) it would look resolved


def test_no_pairing_when_a_seed_holds_several_configurations():
    """hybrid at two alphas with the same seeds: which one to pair is a claims file's choice, not a guess."""
    import pandas as pd

    from bench.results.compare import paired_difference

    runs = pd.DataFrame({"strategy": ["hybrid", "hybrid", "monolingual"], "n_languages": 8, "seed": [0, 0, 0],
                         "alpha": [0.25, 0.75, None], "eval_heldout_map_multi": [0.6, 0.5, 0.4]})  # fmt: skip
    assert paired_difference(runs, "eval_heldout_map_multi", 8, "hybrid", "monolingual") is None
    single = runs.iloc[[0, 2]]
    assert paired_difference(single, "eval_heldout_map_multi", 8, "hybrid", "monolingual").mean == pytest.approx(0.2)
