"""What every batching policy shares: seeded streams, the epoch's pool of groups, and the plan.

A policy picks each step's parallel groups and their (query, passage) languages. Every batch has
exactly `batch_size` pairs and no group twice (a translation of the positive must not be a
negative). `BatchSampler.plan(n_steps)` gives a run's batches up front, so the harness knows every
batch's shape before training; a policy's `next_batch` sees the step and the run's total steps, so a
schedule over training can be expressed.

Randomness: every stream is derived from (seed, purpose, epoch) by hashing (`stream`), never from
`seed + epoch`, so seed s+1 does not replay seed s's second epoch and two seeds' plans are
independent. What a plan is made of (`ParallelIndex`, `PairRef`, `PairBatch`) is in bench.core.pairs.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bench.core.pairs import PairBatch, ParallelIndex
from bench.errors import ConfigError


class BatchConfigError(ConfigError, ValueError):
    """A batching setting that cannot work; a ValueError that entry points report as one line."""


def stream(seed: int, purpose: str, epoch: int | None = None) -> random.Random:
    """An independent generator for one purpose: Random(str) hashes its seed with SHA-512."""
    return random.Random(f"{purpose}/seed={seed}" + ("" if epoch is None else f"/epoch={epoch}"))


class Pool:
    """The groups an epoch has not used yet, in shuffled order, and how many remain per language."""

    def __init__(self, order: list[int], langs: tuple[tuple[str, ...], ...]):
        self.order, self._langs = order, langs
        self.remaining = Counter(lang for g in order for lang in langs[g])

    def take(self, n: int, suits: Callable[[int], bool]) -> list[int] | None:
        """Remove and return the first `n` groups that suit; None (removing nothing) if fewer remain."""
        taken: list[int] = []
        skipped: list[int] = []
        for pos, g in enumerate(self.order):
            (taken if suits(g) else skipped).append(g)
            if len(taken) == n:
                self.order = skipped + self.order[pos + 1 :]  # skipped groups stay for later batches
                self.remaining.subtract(lang for t in taken for lang in self._langs[t])
                return taken
        return None


@dataclass
class Epoch:
    """One epoch's state: its generator and the groups it has left."""

    number: int
    rng: random.Random
    pool: Pool


class BatchSampler:
    """A batching policy. Subclasses define `next_batch`; an epoch is one pass over the shuffled
    groups and ends at the first batch that cannot be filled (its leftovers are dropped, like
    drop_last). Each epoch's generator is `stream(seed, "groups", epoch)`."""

    def __init__(self, index: ParallelIndex, batch_size: int, seed: int = 0):
        if batch_size < 1:
            raise BatchConfigError(f"train.batch_size must be at least 1, got {batch_size}")
        self.index, self.batch_size, self.seed = index, batch_size, seed
        self._langs = tuple(index.languages_of(g) for g in range(len(index.groups)))

    def require(self, n_eligible: int, where: str) -> None:
        if self.batch_size > n_eligible:
            raise BatchConfigError(f"train.batch_size={self.batch_size} exceeds the {n_eligible} parallel "
                                   f"groups {where}; a batch never holds a group twice")

    def start_epoch(self, number: int) -> Epoch:
        rng = stream(self.seed, "groups", number)
        order = list(range(len(self._langs)))
        rng.shuffle(order)
        return Epoch(number, rng, Pool(order, self._langs))

    def next_batch(self, epoch: Epoch, step: int, total_steps: int) -> PairBatch | None:
        """Batch `step` of `total_steps`, or None when this epoch cannot fill another."""
        raise NotImplementedError

    def plan(self, n_steps: int) -> list[PairBatch]:
        """The run's `n_steps` batches, the same on every call."""
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        self.reset()
        batches: list[PairBatch] = []
        number = 0
        while len(batches) < n_steps:
            epoch, before = self.start_epoch(number), len(batches)
            while len(batches) < n_steps and (batch := self.next_batch(epoch, len(batches), n_steps)) is not None:
                batches.append(batch)
            if len(batches) == before:  # constructors check feasibility; this guards a policy bug
                raise RuntimeError(f"{type(self).__name__} produced an empty epoch")
            number += 1
        return batches

    def reset(self) -> None:
        """Restart any run-long streams (e.g. hybrid's coin) so `plan` is repeatable."""


@dataclass(frozen=True)
class BatchStats:
    """What a plan's batches really were, for the results row (None where there were no pairs)."""

    mono_batch_fraction: float | None  # batches whose every query and passage share one language
    cross_pair_fraction: float | None  # pairs with query_lang != passage_lang
    languages_seen: tuple[str, ...]  # sorted

    @classmethod
    def of(cls, batches: Iterable[PairBatch]) -> BatchStats:
        batches = list(batches)
        pairs = [p for batch in batches for p in batch]
        if not pairs:
            return cls(None, None, ())
        n_mono = sum(len({lang for p in b for lang in (p.query_lang, p.passage_lang)}) == 1 for b in batches)
        n_cross = sum(p.query_lang != p.passage_lang for p in pairs)
        seen = {lang for p in pairs for lang in (p.query_lang, p.passage_lang)}
        return cls(n_mono / len(batches), n_cross / len(pairs), tuple(sorted(seen)))
