"""Exact ranks and metrics: hand-computed toy pools, tie-breaking, blocks, and a full-sort reference."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.evaluation.metrics import (
    GROUP_COLUMNS, PoolLayout, count_by_group, rank_arranged, rank_relevant, ranking_metrics, relevant_ranks, sort_keys,
)


def sorted_ranks(scores: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Reference: 1-based positions in a stable descending sort (ties: lower index first)."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    position = torch.empty_like(order)
    position.scatter_(1, order, torch.arange(1, scores.shape[1] + 1).expand_as(order).contiguous())
    return torch.where(relevant >= 0, position.gather(1, relevant.clamp(min=0)), 0)


def test_toy_pool_by_hand():
    # One query, 12 candidates; relevant: 2, 5, 9. Order: 2, 1, 5, 0, 9, ... -> ranks 1, 3 and 5.
    scores = torch.tensor([[0.5, 0.8, 0.9, 0.1, 0.2, 0.7, 0.3, 0.4, 0.0, 0.45, -0.1, -0.2]])
    relevant = torch.tensor([[2, 5, 9]])
    ranks = rank_relevant(scores, relevant).pool
    assert ranks.tolist() == [[1, 3, 5]]
    m = ranking_metrics(ranks)
    assert m.ap.item() == pytest.approx((1 / 1 + 2 / 3 + 3 / 5) / 3)
    assert m.r1.item() == pytest.approx(1 / 3)
    assert m.r10.item() == pytest.approx(1.0)
    dcg = 1 / math.log2(2) + 1 / math.log2(4) + 1 / math.log2(6)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert m.ndcg10.item() == pytest.approx(dcg / idcg)
    assert m.rank_distance.item() == 4


def test_metrics_beyond_the_cutoff():
    ranks = torch.tensor([[4, 0], [11, 25]])  # 0 = padding
    m = ranking_metrics(ranks)
    assert m.ap.tolist() == pytest.approx([1 / 4, (1 / 11 + 2 / 25) / 2])
    assert m.r10.tolist() == [1.0, 0.0]
    assert m.ndcg10.tolist() == pytest.approx([1 / math.log2(5), 0.0])
    assert m.rank_distance.tolist() == [0.0, 14.0]


def test_ties_go_to_the_lower_index():
    scores = torch.tensor([[1.0, 1.0, 1.0, 2.0, 1.0]])
    relevant = torch.tensor([[0, 2, 4]])  # order: 3, then 0, 1, 2, 4 by index
    assert rank_relevant(scores, relevant).pool.tolist() == [[2, 4, 5]]
    # Deterministic: the same answer however the rows are chunked or repeated.
    many = scores.repeat(7, 1)
    assert relevant_ranks(many, relevant.repeat(7, 1), chunk_rows=3).pool.tolist() == [[2, 4, 5]] * 7


def test_ties_across_blocks_follow_pool_order():
    # Blocks [0, 3) and [3, 6); every score equal. Block ranks restart, pool ranks follow the index.
    scores = torch.zeros(1, 6)
    relevant = torch.tensor([[1, 4]])
    ranks = rank_relevant(scores, relevant, torch.tensor([0, 3]))
    assert ranks.pool.tolist() == [[2, 5]]
    assert ranks.block.tolist() == [[2, 2]]


def test_block_ranks_equal_ranks_in_the_block_alone():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(20, 700, generator=g)
    starts = torch.tensor([0, 250, 251, 600])
    relevant = torch.stack([torch.randint(int(s), int(e), (20,), generator=g) for s, e in zip(starts, [250, 251, 600, 700])], 1)
    ranks = rank_relevant(scores, relevant, starts)
    assert torch.equal(ranks.pool, sorted_ranks(scores, relevant))
    for k, (s, e) in enumerate(zip(starts.tolist(), [250, 251, 600, 700])):
        alone = sorted_ranks(scores[:, s:e], relevant[:, k : k + 1] - s)
        assert torch.equal(ranks.block[:, k : k + 1], alone)


@settings(max_examples=60, deadline=None)
@given(
    n_queries=st.integers(1, 4),
    n_candidates=st.integers(1, 600),
    levels=st.integers(1, 6),
    n_relevant=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_matches_a_full_stable_sort(n_queries, n_candidates, levels, n_relevant, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, levels, (n_queries, n_candidates), generator=g).float() / levels  # many ties
    relevant = torch.stack([torch.randperm(n_candidates, generator=g)[:n_relevant] for _ in range(n_queries)])
    if relevant.shape[1] > 1:
        relevant[0, -1] = -1  # padding
    assert torch.equal(rank_relevant(scores, relevant).pool, sorted_ranks(scores, relevant))


def test_ranks_are_a_permutation_prefix():
    # With every candidate relevant, pool ranks are exactly 1..C.
    scores = torch.tensor([[0.3, 0.1, 0.3, 0.2, 0.1]])
    relevant = torch.arange(5).unsqueeze(0)
    assert sorted(rank_relevant(scores, relevant).pool[0].tolist()) == [1, 2, 3, 4, 5]


def test_count_by_group_counts_every_lane():
    # Word-major layout: position (word w, group g, byte b) = (w * n_groups + g) * 8 + b.
    mask = torch.rand(3, 32 * 4 * 8, generator=torch.Generator().manual_seed(1)) > 0.3
    expected = mask.view(3, 32, 4, 8).sum((1, 3))
    assert torch.equal(count_by_group(mask).long(), expected)
    assert torch.equal(count_by_group(torch.ones(1, 32 * 2 * 8, dtype=torch.bool)), torch.full((1, 2), GROUP_COLUMNS, dtype=torch.int32))


def test_sort_keys_follow_float_order_then_index():
    values = [0.5, -0.0, 0.0, -1e-30, float("-inf"), 1e-45, -2.0, float("inf"), 0.5, -2.0]
    scores = torch.tensor([values])
    layout = PoolLayout.of(len(values))
    keys = sort_keys(layout.arrange_scores(scores), layout)[0, layout.position]
    expected = sorted(range(len(values)), key=lambda i: (-values[i], i))  # -0.0 == 0.0: index decides
    assert torch.argsort(keys, descending=True).tolist() == expected
    assert len(set(keys.tolist())) == len(values)
    assert (sort_keys(layout.arrange_scores(scores), layout)[0, layout.padding] < keys.min()).all()


def test_arranged_scores_from_the_matmul_match():
    g = torch.Generator().manual_seed(2)
    queries, candidates = torch.randn(5, 8, generator=g), torch.randn(600, 8, generator=g)
    starts = torch.tensor([0, 100, 450])
    layout = PoolLayout.of(600, starts)
    relevant = torch.tensor([[0, 100, 599]] * 5)
    direct = rank_arranged(queries @ layout.arrange_rows(candidates).T, relevant, layout)
    natural = rank_relevant(queries @ candidates.T, relevant, starts)
    assert torch.equal(direct.pool, natural.pool) and torch.equal(direct.block, natural.block)


def test_rejects_non_finite_scores_and_queries_without_relevant():
    with pytest.raises(ValueError, match="NaN"):
        rank_relevant(torch.tensor([[0.1, float("nan")]]), torch.tensor([[0]]))
    with pytest.raises(ValueError, match="at least one relevant"):
        ranking_metrics(torch.tensor([[0, 0]]))


def test_large_chunk_stays_exact():
    # Several GROUP_COLUMNS groups per block and more rows than one comparison step.
    g = torch.Generator().manual_seed(3)
    scores = (torch.randn(300, 2000, generator=g) * 4).round() / 4
    relevant = torch.randint(0, 2000, (300, 3), generator=g)
    relevant[:, 1] = (relevant[:, 0] + 1) % 2000
    relevant[:, 2] = (relevant[:, 0] + 2) % 2000
    assert torch.equal(relevant_ranks(scores, relevant, chunk_rows=128).pool, sorted_ranks(scores, relevant))
