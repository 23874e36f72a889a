"""Batching policies for contrastive training on parallel question-answer pairs (arXiv 2408.10536).

A policy picks each step's parallel groups and their (query, passage) languages: monolingual
(X-X-mono), cross-lingual (X-Y), hybrid (a per-batch coin between them) or masked-LM (mBERT).
Every batch has exactly `batch_size` pairs and no group twice (a translation of the positive must
not be a negative); the stream is infinite, each epoch reseeded from `seed + epoch` so iterating
twice gives the same batches, and `plan(n_steps)` gives them up front for the harness.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from bench.errors import ConfigError

STRATEGIES = ("monolingual", "crosslingual", "hybrid", "mbert")


class BatchConfigError(ConfigError, ValueError):
    """A batching setting that cannot work; a ValueError that entry points report as one line."""


@dataclass(frozen=True)
class ParallelIndex:
    """Which languages have each parallel group (a question translated into several languages)."""

    groups: tuple[str, ...]  # parallel-group ids
    languages: tuple[str, ...]  # training languages, in order
    group_languages: tuple[frozenset[str], ...]  # languages in which group i has a (question, answer) pair

    def __post_init__(self) -> None:
        if len(self.groups) != len(self.group_languages) or len(set(self.languages)) != len(self.languages):
            raise ValueError("ParallelIndex: groups and group_languages must align, languages be unique")
        if not all(langs <= set(self.languages) for langs in self.group_languages):
            raise ValueError(f"ParallelIndex: a group has languages outside {self.languages}")

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]], languages: Iterable[str]) -> ParallelIndex:
        """Index (group_id, lang) pairs. Pairs in other languages are skipped, so a whole dataset
        can be indexed for a subset of training languages; groups keep first-seen order."""
        languages = tuple(languages)
        by_group: dict[str, set[str]] = {}
        for group, lang in pairs:
            if lang in languages:
                by_group.setdefault(group, set()).add(lang)
        return cls(tuple(by_group), languages, tuple(frozenset(s) for s in by_group.values()))

    def languages_of(self, group: int) -> tuple[str, ...]:
        """The group's languages in training order (never set order, which varies with PYTHONHASHSEED)."""
        return tuple(lang for lang in self.languages if lang in self.group_languages[group])

    def group_counts(self) -> dict[str, int]:
        """How many groups exist in each training language."""
        return {lang: sum(lang in langs for langs in self.group_languages) for lang in self.languages}


@dataclass(frozen=True)
class PairRef:
    """One training pair: group `group`'s question in `query_lang`, its answer in `passage_lang`."""

    group: int  # index into ParallelIndex.groups
    query_lang: str
    passage_lang: str


Batch = list[PairRef]


class BatchSampler:
    """What every policy shares: checks, the infinite stream of epochs (`_epoch(epoch)`, which
    subclasses define and seed from `seed + epoch`), and `plan`."""

    def __init__(self, index: ParallelIndex, batch_size: int, seed: int = 0):
        if batch_size < 1:
            raise BatchConfigError(f"train.batch_size must be at least 1, got {batch_size}")
        self.index, self.batch_size, self.seed = index, batch_size, seed
        self._langs = tuple(index.languages_of(g) for g in range(len(index.groups)))

    def _require(self, n_eligible: int, where: str) -> None:
        if self.batch_size > n_eligible:
            raise BatchConfigError(f"train.batch_size={self.batch_size} exceeds the {n_eligible} parallel "
                                   f"groups {where}; a batch never holds a group twice")

    def __iter__(self) -> Iterator[Batch]:
        for epoch in itertools.count():
            yield from self._epoch(epoch)

    def plan(self, n_steps: int) -> list[Batch]:
        """The first `n_steps` batches, the same on every call."""
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        return list(itertools.islice(self, n_steps))


class _Pool:
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


class _GroupPassSampler(BatchSampler):
    """An epoch is one pass over all groups in shuffled order: each batch takes the first
    `batch_size` unused groups that suit it, and the epoch ends at the first batch that cannot
    be filled (its leftover groups are dropped for this epoch, like drop_last)."""

    def _start(self, epoch: int) -> tuple[random.Random, _Pool]:
        rng = random.Random(self.seed + epoch)
        order = list(range(len(self._langs)))
        rng.shuffle(order)
        return rng, _Pool(order, self._langs)

    def _epoch(self, epoch: int) -> Iterator[Batch]:
        rng, pool = self._start(epoch)
        while (batch := self._next_batch(pool, rng)) is not None:
            yield batch

    def _next_batch(self, pool: _Pool, rng: random.Random) -> Batch | None:
        raise NotImplementedError


class MonolingualBatchSampler(_GroupPassSampler):
    """X-X-mono: a whole batch in one language, query and passage alike. The language is drawn per
    batch (uniformly unless `language_weights`) among those that can still fill a batch this epoch."""

    def __init__(self, index: ParallelIndex, batch_size: int, seed: int = 0,
                 language_weights: Mapping[str, float] | None = None):
        super().__init__(index, batch_size, seed)
        weights = dict.fromkeys(index.languages, 1.0) if language_weights is None else dict(language_weights)
        # Training order, so draws do not depend on how the mapping was written; weight 0 = never.
        self.weights = {lang: float(weights[lang]) for lang in index.languages if weights.get(lang, 0) > 0}
        valid = all(math.isfinite(w) and w >= 0 for w in weights.values()) and set(weights) <= set(index.languages)
        if not (valid and self.weights):
            raise BatchConfigError(f"strategy.language_weights must give training languages {list(index.languages)} "
                                   f"finite weights >= 0, at least one positive; got {weights}")
        counts = index.group_counts()
        for lang in self.weights:
            self._require(counts[lang], f"available in {lang!r}")

    def _next_batch(self, pool: _Pool, rng: random.Random) -> Batch | None:
        fillable = [lang for lang in self.weights if pool.remaining[lang] >= self.batch_size]
        if not fillable:
            return None
        lang = rng.choices(fillable, [self.weights[x] for x in fillable])[0]
        groups = pool.take(self.batch_size, lambda g: lang in self._langs[g])
        return [PairRef(g, lang, lang) for g in groups]


class CrossLingualBatchSampler(_GroupPassSampler):
    """X-Y: every pair's query and passage are in two different languages of its group, the
    ordered (query, passage) pair drawn uniformly; groups in only one language are skipped."""

    def __init__(self, index: ParallelIndex, batch_size: int, seed: int = 0):
        super().__init__(index, batch_size, seed)
        if len(index.languages) < 2:
            raise BatchConfigError(f"cross-lingual batches need 2 or more training languages, got {list(index.languages)}")
        self._require(sum(len(langs) >= 2 for langs in self._langs), "available in 2 or more languages")

    def _next_batch(self, pool: _Pool, rng: random.Random) -> Batch | None:
        groups = pool.take(self.batch_size, lambda g: len(self._langs[g]) >= 2)
        if groups is None:
            return None
        # sample() without replacement: each ordered pair of distinct languages has probability 1/(n(n-1)).
        return [PairRef(g, *rng.sample(self._langs[g], 2)) for g in groups]


class HybridBatchSampler(_GroupPassSampler):
    """Each batch is monolingual with probability `alpha`, else cross-lingual.

    The coin has a generator of its own, while both kinds draw groups and languages from the same
    epoch generator as the single-policy samplers, so alpha=1 reproduces MonolingualBatchSampler
    and alpha=0 CrossLingualBatchSampler batch for batch."""

    def __init__(self, index: ParallelIndex, batch_size: int, seed: int = 0, alpha: float = 0.5,
                 language_weights: Mapping[str, float] | None = None):
        if not 0.0 <= alpha <= 1.0:
            raise BatchConfigError(f"strategy.alpha must be in [0, 1], got {alpha}")
        super().__init__(index, batch_size, seed)
        self.alpha = alpha
        # Only the kinds that can occur are built, so alpha=1 works with a single language.
        self._mono = MonolingualBatchSampler(index, batch_size, seed, language_weights) if alpha > 0 else None
        self._cross = CrossLingualBatchSampler(index, batch_size, seed) if alpha < 1 else None

    def _epoch(self, epoch: int) -> Iterator[Batch]:
        rng, pool = self._start(epoch)
        coin = random.Random(f"hybrid-coin/{self.seed + epoch}")
        while True:
            kind = self._mono if coin.random() < self.alpha else self._cross  # random() < 1 always
            batch = kind._next_batch(pool, rng)
            if batch is None:
                return
            yield batch


class MaskedLMBatchSampler(BatchSampler):
    """mBERT baseline: (group, lang, lang) items, each one's language drawn with probability
    proportional to n_lang**exponent (n_lang: groups in that language), the mBERT/XLM smoothing
    toward small languages; a batch may mix languages. Smoothing repeats small languages more than
    one pass over the groups could, so each language cycles through its own shuffled groups; an
    epoch is as many batches as one pass over all groups would give."""

    def __init__(self, index: ParallelIndex, batch_size: int, seed: int = 0, exponent: float = 0.7):
        super().__init__(index, batch_size, seed)
        if not (math.isfinite(exponent) and exponent >= 0):
            raise BatchConfigError(f"strategy.mlm_exponent must be finite and >= 0, got {exponent}")
        n_eligible = sum(1 for langs in self._langs if langs)
        self._require(n_eligible, "present in any training language")
        self.weights = {lang: n**exponent for lang, n in index.group_counts().items() if n > 0}
        self._groups_in = {lang: [g for g, langs in enumerate(self._langs) if lang in langs] for lang in self.weights}
        self._batches_per_epoch = n_eligible // batch_size

    def _epoch(self, epoch: int) -> Iterator[Batch]:
        rng = random.Random(self.seed + epoch)
        cycles: dict[str, list[int]] = {lang: [] for lang in self.weights}
        for _ in range(self._batches_per_epoch):
            yield self._batch(rng, cycles)

    def _batch(self, rng: random.Random, cycles: dict[str, list[int]]) -> Batch:
        batch: Batch = []
        used: set[int] = set()
        used_in: Counter[str] = Counter()
        while len(batch) < self.batch_size:
            # A language whose groups are all in the batch already cannot be drawn (rare: tiny languages).
            open_langs = [lang for lang in self.weights if used_in[lang] < len(self._groups_in[lang])]
            lang = rng.choices(open_langs, [self.weights[x] for x in open_langs])[0]
            group = self._next_unused(cycles[lang], lang, used, rng)
            batch.append(PairRef(group, lang, lang))
            used.add(group)
            used_in.update(self._langs[group])
        return batch

    def _next_unused(self, cycle: list[int], lang: str, used: set[int], rng: random.Random) -> int:
        """The next group of `lang`'s cycle not in the batch; an exhausted cycle restarts reshuffled."""
        while True:
            for pos, g in enumerate(cycle):
                if g not in used:
                    return cycle.pop(pos)
            fresh = list(self._groups_in[lang])
            rng.shuffle(fresh)
            cycle.extend(fresh)


@dataclass(frozen=True)
class BatchStats:
    """What a plan's batches really were, for the results row (None where there were no pairs)."""

    mono_batch_fraction: float | None  # batches whose every query and passage share one language
    cross_pair_fraction: float | None  # pairs with query_lang != passage_lang
    languages_seen: tuple[str, ...]  # sorted

    @classmethod
    def of(cls, batches: Iterable[Batch]) -> BatchStats:
        batches = list(batches)
        pairs = [p for batch in batches for p in batch]
        if not pairs:
            return cls(None, None, ())
        n_mono = sum(len({lang for p in b for lang in (p.query_lang, p.passage_lang)}) == 1 for b in batches)
        n_cross = sum(p.query_lang != p.passage_lang for p in pairs)
        seen = {lang for p in pairs for lang in (p.query_lang, p.passage_lang)}
        return cls(n_mono / len(batches), n_cross / len(pairs), tuple(sorted(seen)))


def build_batch_sampler(strategy: str, index: ParallelIndex, batch_size: int, seed: int,
                        alpha: float | None = None, mlm_exponent: float = 0.7,
                        language_weights: Mapping[str, float] | None = None) -> BatchSampler:
    """The sampler for a strategy name. Settings a strategy does not use must be left unset,
    so a misplaced override fails loudly instead of being ignored."""
    if strategy not in STRATEGIES:
        raise BatchConfigError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    if alpha is not None and strategy != "hybrid":
        raise BatchConfigError(f"strategy.alpha applies only to the hybrid strategy, not {strategy!r}")
    if language_weights is not None and strategy not in ("monolingual", "hybrid"):
        raise BatchConfigError(f"strategy.language_weights applies only to monolingual and hybrid, not {strategy!r}")
    if strategy == "monolingual":
        return MonolingualBatchSampler(index, batch_size, seed, language_weights)
    if strategy == "crosslingual":
        return CrossLingualBatchSampler(index, batch_size, seed)
    if strategy == "hybrid":
        if alpha is None:
            raise BatchConfigError("the hybrid strategy needs strategy.alpha in [0, 1]")
        return HybridBatchSampler(index, batch_size, seed, alpha, language_weights)
    return MaskedLMBatchSampler(index, batch_size, seed, mlm_exponent)
