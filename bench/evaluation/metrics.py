"""Exact ranking metrics from score matrices, without sorting the candidate pool.

A query's candidates are ranked in one total order: higher score first, equal scores broken
by a fixed tie order (by default the lower candidate index; `tie_seed` makes it a seeded random
permutation of the pool, so that near-equal scores of an untrained model favour no language: with
the pool laid out language by language, index order would favour the first languages). The rank of
a relevant candidate j is therefore `1 + #{c: s_c > s_j} + #{c before j in tie order: s_c == s_j}`,
and every metric here (average precision over
the full ranking, recall@1, recall@10, binary nDCG@10, rank distance) is a function of the
relevant candidates' ranks alone. Counting beats sorting: a query with R relevant candidates
in a pool of C costs R comparisons per candidate, where a sort costs C log C.

The tie-break is folded into the comparison: each float32 score maps to an int32 with the
same order (the magnitude bits of negative floats are flipped), and the reversed tie position
is appended below it, giving every candidate a distinct int64 key whose order *is* the
ranking. A rank is then `1 + #{keys > key_j}`, with no tie handling, exact however many
scores are equal (a random-init encoder's embeddings are nearly collinear: a row of 13,000
scores may hold only ~1,500 distinct values).

A pool may be split into contiguous blocks (LAReQA: one block per language). Ranks are
then reported twice, in the whole pool and within the relevant candidate's own block, so
one pass over a multilingual score matrix also yields every monolingual and cross-lingual
rank (the block of language Y, in pool order, is exactly the pool of the X->Y setting).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

# Counting `key > t` over a row is dominated by the reduction, not the comparison: torch sums
# a bool tensor one element at a time into int64. Reading the 0/1 bytes as int64 words and
# adding GROUP_WORDS words adds 8 byte lanes at once; each lane stays <= GROUP_WORDS <= 255,
# so no carry crosses lanes, and summing the lanes gives the count (about 10x faster). The
# padded key matrix is laid out word-major (word w of every group, then word w + 1), so that
# sum runs over an outer dimension: contiguous vector adds instead of tiny inner sums.
GROUP_WORDS = 32
GROUP_COLUMNS = 8 * GROUP_WORDS  # blocks are padded to a multiple of this many columns
# Rows handled at once are chosen so that the comparison mask (rows x R x columns bools) and
# the keys (rows x columns x 8 bytes) stay near 16 MiB: below glibc's 32 MiB mmap threshold,
# so buffers are reused instead of freshly page-faulted for every step.
STEP_BYTES = 1 << 24
DEFAULT_CHUNK_ROWS = 1024
_PAD_KEY = torch.iinfo(torch.int64).min  # padding columns: never ahead of a real candidate
_NO_KEY = torch.iinfo(torch.int64).max  # padding relevant slots: nothing is ahead of them


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
class PoolLayout:
    """Where each candidate's column goes for counting: blocks padded to whole groups, word-major.

    Arranged column p holds candidate `source[p]` (or padding, `source[p] == n_candidates`).
    Dense callers may multiply by `arrange_rows(candidate_embeddings)` to get arranged scores
    straight from the matmul; anything else goes through `arrange_scores`.
    """

    n_candidates: int
    starts: torch.Tensor  # (n_blocks,) first candidate of each block
    group_block: torch.Tensor  # (n_groups,) block of each GROUP_COLUMNS-wide column group
    source: torch.Tensor  # (width,) candidate index at each arranged column
    position: torch.Tensor  # (n_candidates,) arranged column of each candidate
    reverse_index: torch.Tensor  # (width,) int64 tie-break term: larger for candidates earlier in tie order
    padding: torch.Tensor  # (width,) bool
    index_bits: int

    @classmethod
    def of(cls, n_candidates: int, block_starts: torch.Tensor | None = None, tie_seed: int | None = None) -> PoolLayout:
        starts = (0,) if block_starts is None else tuple(block_starts.tolist())
        return cls._cached(n_candidates, starts, tie_seed)  # every chunk of one pool shares a layout

    @classmethod
    @functools.lru_cache(maxsize=16)
    def _cached(cls, n_candidates: int, block_starts: tuple[int, ...], tie_seed: int | None) -> PoolLayout:
        starts = torch.tensor(block_starts, dtype=torch.long)
        if starts.numel() == 0 or starts[0] != 0 or (starts.diff() <= 0).any() or starts[-1] >= max(n_candidates, 1):
            raise ValueError(f"block_starts must be strictly increasing from 0 below {n_candidates}, got {starts.tolist()}")
        sizes = torch.diff(starts, append=torch.tensor([n_candidates]))
        groups = (sizes + GROUP_COLUMNS - 1) // GROUP_COLUMNS
        group_block = torch.repeat_interleave(torch.arange(len(sizes)), groups)
        # Group-major padded column c of block k holds candidate starts[k] + offset, or padding.
        column = torch.arange(int(groups.sum()) * GROUP_COLUMNS)
        block = group_block[column // GROUP_COLUMNS]
        offset = column - (torch.cumsum(groups, 0) - groups)[block] * GROUP_COLUMNS
        group_major = torch.where(offset < sizes[block], starts[block] + offset, n_candidates)
        source = group_major.view(len(group_block), GROUP_WORDS, 8).transpose(0, 1).reshape(-1)
        padding = source == n_candidates
        position = torch.empty(n_candidates, dtype=torch.long)
        position[source[~padding]] = torch.nonzero(~padding).squeeze(1)
        index_bits = max(1, n_candidates.bit_length())
        # Padding scores are exactly 0.0 (zero rows, or zeros from arrange_scores) and 0.0 keys
        # as 0, so a padding column's key is its reverse_index: the smallest int64, below all.
        tie_position = torch.cat([tie_positions(n_candidates, tie_seed), torch.zeros(1, dtype=torch.long)])[source]
        reverse_index = torch.where(padding, _PAD_KEY, (1 << index_bits) - 1 - tie_position)
        return cls(n_candidates, starts, group_block, source, position, reverse_index, padding, index_bits)

    @property
    def n_groups(self) -> int:
        return len(self.group_block)

    @property
    def width(self) -> int:
        return len(self.source)

    def arrange_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """(n_candidates, d) -> (width, d), zero rows at padding: `q @ arranged.T` gives arranged scores."""
        return torch.cat([rows, rows.new_zeros(1, rows.shape[1])]).index_select(0, self.source)

    def arrange_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """(Q, n_candidates) -> (Q, width)."""
        return torch.cat([scores, scores.new_zeros(scores.shape[0], 1)], dim=1).index_select(1, self.source)

    def block_of(self, candidates: torch.Tensor) -> torch.Tensor:
        return torch.searchsorted(self.starts, candidates, right=True) - 1


@functools.lru_cache(maxsize=16)
def tie_positions(n_candidates: int, tie_seed: int | None) -> torch.Tensor:
    """Each candidate's place in the tie order: its index, or a permutation seeded by `tie_seed`."""
    if tie_seed is None:
        return torch.arange(n_candidates)
    order = torch.randperm(n_candidates, generator=torch.Generator().manual_seed(tie_seed))
    return torch.empty_like(order).scatter_(0, order, torch.arange(n_candidates))


def sort_keys(arranged: torch.Tensor, layout: PoolLayout) -> torch.Tensor:
    """(rows, width) arranged scores -> int64 keys, distinct per row: key_a > key_b iff a ranks before b.

    Scores are compared as float32 (what every encoder here returns). Padding (whose arranged
    score must be 0.0) gets the smallest int64, below every candidate.
    """
    bits = (arranged.float() + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into +0.0: equal floats, equal bits
    ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # negatives: flip the magnitude bits, so int order = float order
    return torch.add(layout.reverse_index, ordered, alpha=1 << layout.index_bits)  # score above, index below


def group_words(mask: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Byte-lane sums per group of a word-major mask (..., GROUP_WORDS * n_groups * 8) -> (..., n_groups) int64.

    Each result holds 8 byte lanes of counts (see GROUP_WORDS); `lane_totals` finishes the count.
    """
    *lead, width = mask.shape
    words = mask.contiguous().view(torch.int64).view(*lead, GROUP_WORDS, width // GROUP_COLUMNS)
    return torch.sum(words, -2, out=out)


def lane_totals(word_sums: torch.Tensor) -> torch.Tensor:
    """(..., n_groups) int64 lane sums -> (..., n_groups) counts."""
    return word_sums.unsqueeze(-1).view(torch.uint8).sum(-1)


def count_by_group(mask: torch.Tensor) -> torch.Tensor:
    """True values per group of a word-major mask (..., GROUP_WORDS * n_groups * 8) -> (..., n_groups)."""
    return lane_totals(group_words(mask))


def rank_arranged(arranged: torch.Tensor, relevant: torch.Tensor, layout: PoolLayout) -> RelevantRanks:
    """Ranks of the relevant candidates for one chunk of queries, from arranged scores.

    arranged: (Q, layout.width) scores (NaN is refused; +-inf are ordered like any value).
    relevant: (Q, R) distinct candidate indices per row (pool order), -1 for padding.
    """
    if arranged.dim() != 2 or relevant.dim() != 2 or relevant.shape[0] != arranged.shape[0] or arranged.shape[1] != layout.width:
        raise ValueError(f"arranged scores {tuple(arranged.shape)} and relevant {tuple(relevant.shape)} do not fit the layout")
    if arranged.numel() and torch.isnan(torch.stack(torch.aminmax(arranged))).any():  # NaN propagates into min/max
        raise ValueError("scores contain NaN; ranks would be meaningless")
    relevant = relevant.long().cpu()
    if (relevant >= layout.n_candidates).any():
        raise ValueError(f"relevant index out of range for a pool of {layout.n_candidates}")
    valid = relevant >= 0
    columns = layout.position[relevant.clamp(min=0)]
    n_rows, n_rel = relevant.shape
    lanes = torch.empty(n_rows, n_rel, layout.n_groups, dtype=torch.int64)  # per column group, 8 byte lanes
    step = max(1, STEP_BYTES // (max(n_rel, 8) * layout.width))
    for lo in range(0, n_rows, step):
        keys = sort_keys(arranged[lo : lo + step].cpu(), layout)
        limits = torch.where(valid[lo : lo + step], keys.gather(1, columns[lo : lo + step]), _NO_KEY)
        group_words(keys.unsqueeze(1) > limits.unsqueeze(2), out=lanes[lo : lo + step])
    by_block = torch.zeros(n_rows, n_rel, len(layout.starts), dtype=torch.int64)
    by_block.index_add_(2, layout.group_block, lane_totals(lanes))
    own = layout.block_of(relevant.clamp(min=0)).unsqueeze(-1)
    zero = torch.zeros_like(relevant)
    return RelevantRanks(
        pool=torch.where(valid, 1 + by_block.sum(-1), zero),
        block=torch.where(valid, 1 + by_block.gather(2, own).squeeze(-1), zero),
    )


def rank_relevant(scores: torch.Tensor, relevant: torch.Tensor, block_starts: torch.Tensor | None = None,
                  tie_seed: int | None = None) -> RelevantRanks:  # fmt: skip
    """Ranks of the relevant candidates for one chunk of queries, from (Q, C) scores in pool order.

    block_starts: first candidate index of each block (None: the pool is one block).
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be (Q, C), got shape {tuple(scores.shape)}")
    layout = PoolLayout.of(scores.shape[1], block_starts, tie_seed)
    return rank_arranged(layout.arrange_scores(scores.cpu()), relevant, layout)


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
