"""Training pairs as references, and a batch plan's batches: what samplers yield and collation consumes.

A `PairRef` names one (question, answer) pair by its parallel group and languages; a `PairBatch` is one
step's global batch of them. They live below both the samplers (bench.strategies) and the collators
(bench.data.collate), so neither imports the other; the collated tensors are `bench.data.collate.Batch`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


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


PairBatch = list[PairRef]
"""One step's global batch of pair references, as a sampler plans it (collated later into a `Batch` of tensors)."""
