"""X-Y (arXiv 2408.10536): every pair's query and passage are in two different languages."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.pairs import PairBatch, PairRef, ParallelIndex
from bench.strategies.base import ContrastiveStrategy
from bench.strategies.registry import register
from bench.strategies.sampling import BatchConfigError, BatchSampler, Epoch


class CrossLingualBatchSampler(BatchSampler):
    """The ordered (query, passage) language pair of each group is drawn uniformly among its
    languages; groups in only one language are skipped."""

    def __init__(self, index: ParallelIndex, batch_size: int, seed: int = 0):
        super().__init__(index, batch_size, seed)
        if len(index.languages) < 2:
            raise BatchConfigError(f"cross-lingual batches need 2 or more training languages, got {list(index.languages)}")
        self.require(sum(len(langs) >= 2 for langs in self._langs), "available in 2 or more languages")

    def next_batch(self, epoch: Epoch, step: int, total_steps: int) -> PairBatch | None:
        groups = epoch.pool.take(self.batch_size, lambda g: len(self._langs[g]) >= 2)
        if groups is None:
            return None
        # sample() without replacement: each ordered pair of distinct languages has probability 1/(n(n-1)).
        return [PairRef(g, *epoch.rng.sample(self._langs[g], 2)) for g in groups]


@register
@dataclass(frozen=True)
class CrossLingual(ContrastiveStrategy):
    name = "crosslingual"
    order = 20
    min_languages = 2

    def sampler(self, index: ParallelIndex, batch_size: int, seed: int) -> BatchSampler:
        return CrossLingualBatchSampler(index, batch_size, seed)
