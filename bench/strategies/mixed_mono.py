"""X-X (LAReQA, Roy et al. 2020): every pair is monolingual, but a batch mixes languages.

Each batch takes the next `batch_size` groups of the epoch's shuffled pass and gives each pair a
language drawn uniformly among its group's languages, query and passage alike. In-batch negatives are
then mostly in other languages than the query, so the model can separate positives from negatives by
language alone: LAReQA found X-X gives the strongest language bias, the natural contrast to X-X-mono
(`monolingual`), whose negatives share the query's language.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.pairs import PairBatch, PairRef, ParallelIndex
from bench.strategies.base import ContrastiveStrategy
from bench.strategies.registry import register
from bench.strategies.sampling import BatchSampler, Epoch


class MixedMonolingualBatchSampler(BatchSampler):
    """Monolingual pairs in languages drawn per pair, so one batch holds several languages."""

    def __init__(self, index: ParallelIndex, batch_size: int, seed: int = 0):
        super().__init__(index, batch_size, seed)
        self.require(sum(1 for langs in self._langs if langs), "present in any training language")

    def next_batch(self, epoch: Epoch, step: int, total_steps: int) -> PairBatch | None:
        groups = epoch.pool.take(self.batch_size, lambda g: bool(self._langs[g]))
        if groups is None:
            return None
        return [PairRef(g, lang, lang) for g in groups for lang in [epoch.rng.choice(self._langs[g])]]


@register
@dataclass(frozen=True)
class MixedMonolingual(ContrastiveStrategy):
    name = "mixed-mono"
    order = 40
    in_default_sweep = False  # LAReQA's X-X, an extra arm: experiments and the memory check name it (glob(*))

    def sampler(self, index: ParallelIndex, batch_size: int, seed: int) -> BatchSampler:
        return MixedMonolingualBatchSampler(index, batch_size, seed)
