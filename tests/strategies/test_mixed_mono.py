"""The X-X strategy (`mixed-mono`): monolingual pairs, batches that mix languages, uniform languages per pair.

Batch invariants, determinism and seed independence are tested for every registered strategy in
test_strategies.py; this file tests what is particular to X-X.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from bench.core.pairs import ParallelIndex
from bench.strategies import strategy_class, strategy_names
from bench.strategies.mixed_mono import MixedMonolingualBatchSampler
from bench.strategies.sampling import BatchStats
from tests.conftest import compose


def full_index(n_groups: int, languages=("en", "de", "ar", "th")) -> ParallelIndex:
    return ParallelIndex.from_pairs(((f"q{g}", lang) for g in range(n_groups) for lang in languages), languages)


def test_registered_with_its_yaml():
    assert "mixed-mono" in strategy_names()
    cfg = compose("strategy=mixed-mono", "languages=2")
    assert cfg.strategy == strategy_class("mixed-mono")(temperature=0.05)
    assert type(cfg.strategy.sampler(full_index(40), 8, 0)) is MixedMonolingualBatchSampler


def test_every_pair_is_monolingual_but_batches_mix_languages():
    plan = MixedMonolingualBatchSampler(full_index(60), 8, seed=0).plan(200)
    assert all(p.query_lang == p.passage_lang for batch in plan for p in batch)
    stats = BatchStats.of(plan)
    assert stats.cross_pair_fraction == 0.0
    # With 4 languages drawn per pair, a batch of 8 is all one language with probability 4 * 4**-8.
    assert stats.mono_batch_fraction < 0.01
    assert all(len({p.group for p in batch}) == 8 for batch in plan)


def test_languages_are_uniform_per_pair():
    plan = MixedMonolingualBatchSampler(full_index(50), 10, seed=3).plan(600)
    counts = Counter(p.query_lang for batch in plan for p in batch)
    n = sum(counts.values())
    for lang in ("en", "de", "ar", "th"):
        assert abs(counts[lang] / n - 0.25) < 4.5 * math.sqrt(0.25 * 0.75 / n)


def test_every_group_once_per_epoch_and_only_in_its_languages():
    index = ParallelIndex.from_pairs([(f"q{g}", "en") for g in range(24)] + [(f"q{g}", "th") for g in range(12)], ("en", "th"))
    plan = MixedMonolingualBatchSampler(index, 6, seed=1).plan(8)
    for epoch in (plan[:4], plan[4:]):
        assert sorted(p.group for batch in epoch for p in batch) == list(range(24))
    assert all(p.query_lang == "en" for batch in plan for p in batch if p.group >= 12)


def test_too_large_a_batch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"train\.batch_size=11 exceeds the 10 parallel groups"):
        MixedMonolingualBatchSampler(full_index(10), 11)
