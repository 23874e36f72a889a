"""Exact ranking metrics from score matrices, without sorting the candidate pool.

A query's relevant candidates are ranked in one total order: higher score first, equal
scores broken by the lower candidate index. The rank of a relevant candidate j is
therefore `1 + #{c: s_c > s_j} + #{c < j: s_c == s_j}`, and every metric here (average
precision over the full ranking, recall@1, recall@10, binary nDCG@10, rank distance) is a
function of the relevant candidates' ranks alone. Counting beats sorting: a query with R
relevant candidates in a pool of C costs R comparisons per candidate, where a sort would
cost C log C and an argsort's int64 indices.

A pool may be split into contiguous blocks (LAReQA: one block per language). Ranks are
then reported twice, in the whole pool and within the relevant candidate's own block, so
one pass over a multilingual score matrix also yields every monolingual and cross-lingual
rank (the block of language Y, in pool order, is exactly the pool of the X->Y setting).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

# Counting `s > t` over a row is dominated by the reduction, not the comparison: torch sums
# a bool tensor one element at a time into int64. Reading the 0/1 bytes as int64 words and
# adding GROUP_WORDS words adds 8 byte lanes at once; each lane stays <= GROUP_WORDS <= 255,
# so no carry crosses lanes, and summing the lanes gives the count (about 10x faster). The
# padded score matrix is laid out word-major (word w of every group, then word w + 1), so
# that sum runs over an outer dimension: contiguous vector adds instead of tiny inner sums.
GROUP_WORDS = 32
GROUP_COLUMNS = 8 * GROUP_WORDS  # blocks are padded to a multiple of this many columns
MASK_ELEMENTS = 1 << 25  # comparisons materialised at once (32 MiB of bools)
DEFAULT_CHUNK_ROWS = 1024


@dataclass(frozen=True)
class RelevantRanks:
    """1-based ranks of each query's relevant candidates (0 where `relevant` was padding)."""

    pool: torch.Tensor  # (Q, R) int64: rank in the whole pool
    block: torch.Tensor  # (Q, R) int64: rank within the relevant candidate's own block


@dataclass(frozen=True)
class QueryMetrics:
    """Per-query metrics (float64, shape (Q,)); averages are taken by the caller."""

    ap: torch.Tensor
    r1: torch.Tensor
    r10: torch.Tensor
    ndcg10: torch.Tensor
    rank_distance: torch.Tensor


@dataclass(frozen=True)
class _Layout:
    """Where each block's columns go in the padded, word-major score matrix."""

    starts: torch.Tensor  # (nb,) first column of each block in the unpadded pool
    group_block: torch.Tensor  # (n_groups,) block of each GROUP_COLUMNS-wide column group
    source: torch.Tensor  # (width,) unpadded column feeding each padded position; n_candidates = padding
    n_groups: int

    @classmethod
    def of(cls, n_candidates: int, block_starts: torch.Tensor | None) -> _Layout:
        starts = (0,) if block_starts is None else tuple(block_starts.tolist())
        return cls._cached(n_candidates, starts)  # chunks of one pool share a layout

    @classmethod
    @functools.lru_cache(maxsize=16)
    def _cached(cls, n_candidates: int, block_starts: tuple[int, ...]) -> _Layout:
        starts = torch.tensor(block_starts, dtype=torch.long)
        if starts.numel() == 0 or starts[0] != 0 or (starts.diff() <= 0).any() or starts[-1] >= max(n_candidates, 1):
            raise ValueError(f"block_starts must be strictly increasing from 0 below {n_candidates}, got {starts.tolist()}")
        sizes = torch.diff(starts, append=torch.tensor([n_candidates]))
        groups = (sizes + GROUP_COLUMNS - 1) // GROUP_COLUMNS
        group_block = torch.repeat_interleave(torch.arange(len(sizes)), groups)
        # Group-major padded column c of block k reads column starts[k] + offset, or the padding.
        column = torch.arange(int(groups.sum()) * GROUP_COLUMNS)
        block = group_block[column // GROUP_COLUMNS]
        offset = column - (torch.cumsum(groups, 0) - groups)[block] * GROUP_COLUMNS
        source = torch.where(offset < sizes[block], starts[block] + offset, n_candidates)
        word_major = source.view(len(group_block), GROUP_WORDS, 8).transpose(0, 1).reshape(-1)
        return cls(starts, group_block, word_major, len(group_block))

    def pad(self, scores: torch.Tensor) -> torch.Tensor:
        """(rows, GROUP_WORDS, n_groups, 8): each block padded with -inf (which never beats a finite
        score) to whole groups, then laid out word-major. Two passes over the scores."""
        extended = torch.nn.functional.pad(scores, (0, 1), value=-math.inf)
        return extended.index_select(1, self.source).view(scores.shape[0], GROUP_WORDS, self.n_groups, 8)

    def block_of(self, columns: torch.Tensor) -> torch.Tensor:
        return torch.searchsorted(self.starts, columns, right=True) - 1


def count_by_group(mask: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """True values per group of a word-major mask (..., GROUP_WORDS, n_groups, 8) -> (..., n_groups) int32."""
    words = mask.contiguous().view(torch.int64).squeeze(-1)  # (..., GROUP_WORDS, n_groups)
    lanes = words.sum(-2).unsqueeze(-1).view(torch.uint8)  # (..., n_groups, 8), each lane <= GROUP_WORDS
    return torch.sum(lanes, -1, dtype=torch.int32, out=out)


def _block_counts(padded: torch.Tensor, thresholds: torch.Tensor, layout: _Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (query, relevant, block): how many candidates score above / exactly at the threshold."""
    n_rows, n_rel = thresholds.shape
    # Few large operations on purpose: on a busy machine every parallel op waits for both threads.
    above = torch.empty(2, n_rows, n_rel, layout.n_groups, dtype=torch.int32)  # [>, >=] per group
    step = max(1, MASK_ELEMENTS // max(1, n_rel * layout.n_groups * GROUP_COLUMNS))
    for lo in range(0, n_rows, step):
        rows, limits = padded[lo : lo + step].unsqueeze(1), thresholds[lo : lo + step, :, None, None, None]
        count_by_group(rows > limits, out=above[0, lo : lo + step])
        count_by_group(rows >= limits, out=above[1, lo : lo + step])
    blocks = torch.zeros(2, n_rows, n_rel, len(layout.starts), dtype=torch.int64)
    blocks.index_add_(3, layout.group_block, above.long())
    return blocks[0], blocks[1] - blocks[0]


def _ties_before_in_own_block(
    scores: torch.Tensor, relevant: torch.Tensor, block: torch.Tensor, layout: _Layout, pairs: torch.Tensor
) -> torch.Tensor:
    """For the (query, relevant) pairs given, candidates of the same block tied with it at a lower index."""
    rows, slots = pairs.unbind(1)
    columns = relevant[rows, slots]
    starts = layout.starts[block[rows, slots]]
    out = torch.empty(len(pairs), dtype=torch.int64)
    step = max(1, MASK_ELEMENTS // max(1, scores.shape[1]))
    index = torch.arange(scores.shape[1])
    for lo in range(0, len(pairs), step):
        r, col, start = rows[lo : lo + step], columns[lo : lo + step], starts[lo : lo + step]
        sub = scores[r]
        tied = (sub == sub.gather(1, col.unsqueeze(1))) & (index >= start.unsqueeze(1)) & (index < col.unsqueeze(1))
        out[lo : lo + step] = tied.sum(1)
    return out


def rank_relevant(scores: torch.Tensor, relevant: torch.Tensor, block_starts: torch.Tensor | None = None) -> RelevantRanks:
    """Ranks of the relevant candidates for one chunk of queries.

    scores: (Q, C) float, finite. relevant: (Q, R) int64 candidate indices, -1 for padding.
    block_starts: first candidate index of each block (None: the pool is one block).
    """
    if scores.dim() != 2 or relevant.dim() != 2 or relevant.shape[0] != scores.shape[0]:
        raise ValueError(f"scores (Q, C) and relevant (Q, R) disagree: {tuple(scores.shape)} vs {tuple(relevant.shape)}")
    if scores.numel() and not torch.isfinite(torch.stack(torch.aminmax(scores))).all():  # NaN propagates
        raise ValueError("scores contain NaN or infinity; ranks would be meaningless")
    if (relevant >= scores.shape[1]).any():
        raise ValueError(f"relevant index out of range for a pool of {scores.shape[1]}")
    scores, relevant = scores.float().cpu(), relevant.long().cpu()
    layout = _Layout.of(scores.shape[1], block_starts)
    valid = relevant >= 0
    columns = relevant.clamp(min=0)
    # Padding gets +inf: nothing is above or equal to it, so its counts are all zero.
    thresholds = torch.where(valid, scores.gather(1, columns), torch.full_like(scores[:, :1], math.inf))
    own = layout.block_of(columns)
    above, equal = _block_counts(layout.pad(scores), thresholds, layout)

    # Equal scores in earlier blocks come first, in later blocks after; in the own block only
    # those at a lower index. Without ties, `equal` is 1 in the own block (the candidate itself).
    block_ids = torch.arange(len(layout.starts))
    before = (block_ids < own.unsqueeze(-1)).long()
    own_equal = equal.gather(2, own.unsqueeze(-1)).squeeze(-1)
    own_ties = torch.zeros_like(own_equal)
    tied = torch.nonzero(valid & (own_equal > 1))
    if len(tied):
        own_ties[tied[:, 0], tied[:, 1]] = _ties_before_in_own_block(scores, columns, own, layout, tied)
    own_above = above.gather(2, own.unsqueeze(-1)).squeeze(-1)
    block_rank = 1 + own_above + own_ties
    pool_rank = block_rank + ((above + equal * before) * (block_ids != own.unsqueeze(-1))).sum(-1)
    zero = torch.zeros_like(block_rank)
    return RelevantRanks(torch.where(valid, pool_rank, zero), torch.where(valid, block_rank, zero))


def relevant_ranks(
    scores: torch.Tensor, relevant: torch.Tensor, block_starts: torch.Tensor | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> RelevantRanks:
    """`rank_relevant` over a full score matrix, a chunk of query rows at a time."""
    parts = [rank_relevant(scores[lo : lo + chunk_rows], relevant[lo : lo + chunk_rows], block_starts)
             for lo in range(0, scores.shape[0], chunk_rows)]
    if not parts:
        empty = torch.zeros(0, relevant.shape[1], dtype=torch.long)
        return RelevantRanks(empty, empty)
    return RelevantRanks(torch.cat([p.pool for p in parts]), torch.cat([p.block for p in parts]))


def ranking_metrics(ranks: torch.Tensor) -> QueryMetrics:
    """Per-query metrics from the ranks of its relevant candidates ((Q, R), 0 = padding).

    Recall@k is the fraction of a query's relevant candidates ranked in the top k (trec_eval's
    `recall_k`), so in a pool with n relevant answers recall@1 is at most 1/n. nDCG@10 uses
    binary gains and a 1/log2(rank + 1) discount; rank distance is the highest minus the
    lowest relevant rank (0 with one relevant candidate).
    """
    if ranks.dim() != 2:
        raise ValueError(f"ranks must be (Q, R), got shape {tuple(ranks.shape)}")
    valid = ranks > 0
    n_relevant = valid.sum(1)
    if (n_relevant == 0).any():
        raise ValueError("every query needs at least one relevant candidate")
    ordered = torch.where(valid, ranks, torch.iinfo(torch.int64).max).sort(1).values.double()
    position = torch.arange(1, ranks.shape[1] + 1, dtype=torch.float64)
    n = n_relevant.double()
    precision = torch.where(position <= n.unsqueeze(1), position / ordered, 0.0)  # valid ranks sort first
    rank = ranks.double()
    discount = torch.where(valid & (ranks <= 10), 1.0 / torch.log2(rank + 1.0), 0.0)
    ideal = torch.cumsum(1.0 / torch.log2(torch.arange(2, 12, dtype=torch.float64)), 0)
    highest = torch.where(valid, ranks, 0).max(1).values
    lowest = torch.where(valid, ranks, torch.iinfo(torch.int64).max).min(1).values
    return QueryMetrics(
        ap=precision.sum(1) / n,
        r1=(valid & (ranks <= 1)).sum(1) / n,
        r10=(valid & (ranks <= 10)).sum(1) / n,
        ndcg10=discount.sum(1) / ideal[n_relevant.clamp(max=10) - 1],
        rank_distance=(highest - lowest).double(),
    )
