"""Hybrid batch training (arXiv 2408.10536): each batch is monolingual with probability alpha, else cross-lingual.

Two schedules decide which batches are monolingual:
  bernoulli  a coin per step (the paper's definition): the realised fraction is a binomial draw, so
             two seeds of one alpha train on different mixes (0.30 to 0.55 at alpha=0.5 over 20 steps);
  exact      exactly round(alpha * steps) monolingual batches, at positions drawn from the seed, so
             every seed realises alpha and seeds differ only in which batches and where.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.core.pairs import PairBatch, ParallelIndex
from bench.errors import ConfigError
from bench.strategies.base import ContrastiveStrategy, PaperClaim
from bench.strategies.crosslingual import CrossLingualBatchSampler
from bench.strategies.monolingual import MonolingualBatchSampler
from bench.strategies.registry import register
from bench.strategies.sampling import BatchSampler, Epoch, stream


SCHEDULES = ("bernoulli", "exact")


class HybridBatchSampler(BatchSampler):
    """The schedule decides each batch's kind (a coin per step, or an exact seeded set of positions);
    both kinds draw groups and languages from the epoch's generator exactly as the single-policy
    samplers do, so alpha=1 reproduces MonolingualBatchSampler and alpha=0 CrossLingualBatchSampler
    batch for batch, under either schedule."""

    def __init__(self, index: ParallelIndex, batch_size: int, seed: int, alpha: float, schedule: str = "bernoulli"):
        super().__init__(index, batch_size, seed)
        self.alpha, self.schedule = alpha, schedule
        # Only the kinds that can occur are built, so alpha=1 works with a single language.
        self._mono = MonolingualBatchSampler(index, batch_size, seed) if alpha > 0 else None
        self._cross = CrossLingualBatchSampler(index, batch_size, seed) if alpha < 1 else None
        self.reset()

    def reset(self) -> None:
        self._coin = stream(self.seed, "hybrid-coin")
        self._mono_steps: frozenset[int] | None = None

    def is_monolingual(self, step: int, total_steps: int) -> bool:
        """Whether batch `step` of `total_steps` is monolingual under the schedule."""
        if self.schedule == "bernoulli":
            return self._coin.random() < self.alpha  # random() < 1 always: alpha=1 is always mono
        if self._mono_steps is None:  # drawn once per plan, from its own stream: independent of the batches
            positions = stream(self.seed, "hybrid-exact-positions").sample(range(total_steps), exact_count(self.alpha, total_steps))
            self._mono_steps = frozenset(positions)
        return step in self._mono_steps

    def next_batch(self, epoch: Epoch, step: int, total_steps: int) -> PairBatch | None:
        kind = self._mono if self.is_monolingual(step, total_steps) else self._cross
        return kind.next_batch(epoch, step, total_steps)


def exact_count(alpha: float, steps: int) -> int:
    """Monolingual batches under the exact schedule: round(alpha * steps), halves rounded up (not to even)."""
    return min(steps, math.floor(alpha * steps + 0.5))


@register
@dataclass(frozen=True)
class Hybrid(ContrastiveStrategy):
    name = "hybrid"
    order = 30
    compared_with = ("monolingual", "crosslingual")
    paper_claims = (  # arXiv 2408.10536's pattern: hybrid keeps the best of both pure strategies
        PaperClaim("map_cross", "monolingual", "not worse", "hybrid at least as good as monolingual on cross-lingual mAP"),
        PaperClaim("map_multi", "monolingual", "not worse", "hybrid at least as good as monolingual on multilingual mAP"),
        PaperClaim("map_mono", "crosslingual", "not worse", "hybrid at least as good as cross-lingual on monolingual mAP"),
        PaperClaim("rank_distance", "monolingual", "better", "hybrid has a lower rank distance than monolingual"),
    )
    alpha: float  # probability that a batch is monolingual (exact schedule: the fraction of batches)
    # Defaulted here only so configs written before the option existed still load; conf/strategy/hybrid.yaml sets it.
    schedule: str = "bernoulli"

    @property
    def min_languages(self) -> int:  # alpha=1 is monolingual training and works with one language
        return 1 if self.alpha == 1 else 2

    def check(self) -> None:
        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and 0 <= self.alpha <= 1):
            raise ConfigError(f"strategy.alpha must be in [0, 1], got {self.alpha!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"strategy.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")

    def params(self) -> dict:
        """As configured; the paper's bernoulli schedule is left out so that the configuration hashes of
        every row and baseline recorded before `schedule` existed still identify the same runs."""
        params = super().params()
        if self.schedule == "bernoulli":
            params.pop("schedule")
        return params

    def sampler(self, index: ParallelIndex, batch_size: int, seed: int) -> BatchSampler:
        return HybridBatchSampler(index, batch_size, seed, self.alpha, self.schedule)
