"""X-X-mono (arXiv 2408.10536): every batch is in one language, queries and passages alike."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.pairs import PairBatch, PairRef, ParallelIndex
from bench.strategies.base import ContrastiveStrategy
from bench.strategies.registry import register
from bench.strategies.sampling import BatchSampler, Epoch


class MonolingualBatchSampler(BatchSampler):
    """Each batch's language is drawn uniformly among those that can still fill a batch this epoch."""

    def __init__(self, index: ParallelIndex, batch_size: int, seed: int = 0):
        super().__init__(index, batch_size, seed)
        for lang, count in index.group_counts().items():
            self.require(count, f"available in {lang!r}")

    def next_batch(self, epoch: Epoch, step: int, total_steps: int) -> PairBatch | None:
        fillable = [lang for lang in self.index.languages if epoch.pool.remaining[lang] >= self.batch_size]
        if not fillable:
            return None
        lang = epoch.rng.choice(fillable)
        groups = epoch.pool.take(self.batch_size, lambda g: lang in self._langs[g])
        return [PairRef(g, lang, lang) for g in groups]


@register
@dataclass(frozen=True)
class Monolingual(ContrastiveStrategy):
    name = "monolingual"
    order = 10

    def sampler(self, index: ParallelIndex, batch_size: int, seed: int) -> BatchSampler:
        return MonolingualBatchSampler(index, batch_size, seed)
