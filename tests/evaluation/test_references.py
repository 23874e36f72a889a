"""Reference levels: the chance formulas are exact (checked against every permutation of small pools)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from bench.data.lareqa import Candidate, LanguageData, LareqaDataset, Question
from bench.evaluation.metrics import ranking_metrics
from bench.evaluation.references import chance_ap, chance_ndcg10, chance_table, references
from bench.evaluation.retrieval import evaluate, summarize
from bench.evaluation.sets import EvalSet


def enumerate_random_rankings(n: int, r: int) -> dict[str, float]:
    """Average metrics over every placement of r relevant items among n ranks."""
    totals = {"ap": 0.0, "r1": 0.0, "ndcg10": 0.0, "rank_distance": 0.0}
    placements = list(itertools.combinations(range(1, n + 1), r))
    for ranks in placements:
        metrics = ranking_metrics(torch.tensor([list(ranks)]))
        for key in totals:
            totals[key] += float(getattr(metrics, key)[0])
    return {key: value / len(placements) for key, value in totals.items()}


@pytest.mark.parametrize(("n", "r"), [(1, 1), (5, 1), (6, 2), (7, 3), (12, 4), (13, 11)])
def test_chance_formulas_equal_the_average_over_every_ranking(n, r):
    exact = enumerate_random_rankings(n, r)
    assert chance_ap(n, r) == pytest.approx(exact["ap"], abs=1e-9)
    assert chance_ndcg10(n, r) == pytest.approx(exact["ndcg10"], abs=1e-9)
    assert 1.0 / n == pytest.approx(exact["r1"], abs=1e-9)
    assert (r - 1) * (n + 1) / (r + 1) == pytest.approx(exact["rank_distance"], abs=1e-9)


def toy() -> EvalSet:
    """Two languages, a group missing in yy: pools of 3 and 2 candidates."""
    by_lang = {
        "xx": LanguageData("xx", (Question("g1", "xx", "q1", 0, 0), Question("g2", "xx", "q2", 0, 1)),
                           tuple(Candidate("xx", 0, 0, i, f"c{i}") for i in range(3))),
        "yy": LanguageData("yy", (Question("g1", "yy", "p1", 0, 0),), tuple(Candidate("yy", 0, 0, i, f"d{i}") for i in range(2))),
    }  # fmt: skip
    return EvalSet("toy", "heldout", LareqaDataset("toy", by_lang, ("a",)))


def test_chance_table_has_the_protocols_settings_and_pool_sizes():
    table = chance_table(toy()).set_index(["setting", "query_lang", "pool_lang"])
    assert table.loc[("mono", "xx", "xx"), "map"] == pytest.approx(chance_ap(3, 1))
    assert table.loc[("cross", "xx", "yy"), "n"] == 1  # q2 has no parallel in yy
    assert table.loc[("cross", "xx", "yy"), "map"] == pytest.approx(chance_ap(2, 1))
    multi = table.loc[("multi", "xx", "*")]
    assert multi["map"] == pytest.approx((chance_ap(5, 2) + chance_ap(5, 1)) / 2)  # g1 in both, g2 in xx only
    assert multi["rank_distance"] == pytest.approx(((2 - 1) * 6 / 3 + 0) / 2)


def test_a_random_encoder_scores_chance_on_average():
    """Monte Carlo agreement on a real-sized setting: many random encoders average to the formula."""
    eval_set = toy()
    expected = summarize(chance_table(eval_set))

    class Random:
        def __init__(self, seed):
            self.generator = torch.Generator().manual_seed(seed)

        def encode(self, texts, batch_size, kind="passage"):
            return torch.nn.functional.normalize(torch.randn(len(texts), 8, generator=self.generator), dim=1)

    runs = [evaluate(Random(seed), [eval_set]).summaries["toy"] for seed in range(1500)]
    for metric in ("map_mono", "map_cross", "map_multi", "rank_distance"):
        mean = sum(r[metric] for r in runs) / len(runs)
        assert mean == pytest.approx(expected[metric], rel=0.04), metric


def test_references_hold_chance_and_lexical_for_every_set():
    levels = references([toy()], None, batch_size=8, query_chunk=8)
    assert set(levels["toy"]) == {"role", "chance", "lexical"}
    assert math.isfinite(levels["toy"]["lexical"]["map_multi"])
