"""Hybrid batch training (arXiv 2408.10536): each batch is monolingual with probability alpha, else cross-lingual."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.errors import ConfigError
from bench.strategies.base import ContrastiveStrategy
from bench.strategies.crosslingual import CrossLingualBatchSampler
from bench.strategies.monolingual import MonolingualBatchSampler
from bench.strategies.registry import register
from bench.strategies.sampling import Batch, BatchSampler, Epoch, ParallelIndex, stream


class HybridBatchSampler(BatchSampler):
    """A coin per step decides the batch's kind. The coin is one stream for the whole run (so the
    realised monolingual fraction is a binomial draw with probability alpha); both kinds draw groups
    and languages from the epoch's generator exactly as the single-policy samplers do, so alpha=1
    reproduces MonolingualBatchSampler and alpha=0 CrossLingualBatchSampler batch for batch."""

    def __init__(self, index: ParallelIndex, batch_size: int, seed: int, alpha: float):
        super().__init__(index, batch_size, seed)
        self.alpha = alpha
        # Only the kinds that can occur are built, so alpha=1 works with a single language.
        self._mono = MonolingualBatchSampler(index, batch_size, seed) if alpha > 0 else None
        self._cross = CrossLingualBatchSampler(index, batch_size, seed) if alpha < 1 else None
        self.reset()

    def reset(self) -> None:
        self._coin = stream(self.seed, "hybrid-coin")

    def next_batch(self, epoch: Epoch, step: int, total_steps: int) -> Batch | None:
        kind = self._mono if self._coin.random() < self.alpha else self._cross  # random() < 1 always
        return kind.next_batch(epoch, step, total_steps)


@register
@dataclass(frozen=True)
class Hybrid(ContrastiveStrategy):
    name = "hybrid"
    order = 30
    alpha: float  # probability that a batch is monolingual

    @property
    def min_languages(self) -> int:  # alpha=1 is monolingual training and works with one language
        return 1 if self.alpha == 1 else 2

    def check(self) -> None:
        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and 0 <= self.alpha <= 1):
            raise ConfigError(f"strategy.alpha must be in [0, 1], got {self.alpha!r}")

    def sampler(self, index: ParallelIndex, batch_size: int, seed: int) -> BatchSampler:
        return HybridBatchSampler(index, batch_size, seed, self.alpha)
