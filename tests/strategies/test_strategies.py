"""Tests for bench.strategies: the registry, batch invariants, exact hybrid limits, determinism,
independent seeds, and frequencies.

Statistical tests use fixed seeds and tolerances of several binomial standard deviations, so they
are deterministic and still fail if a policy draws with the wrong probabilities.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import PROJECT_ROOT
from bench.config import plan_runs
from bench.core.pairs import PairRef, ParallelIndex
from bench.errors import ConfigError
from bench.strategies import strategy_class, strategy_names
from bench.strategies.crosslingual import CrossLingualBatchSampler
from bench.strategies.hybrid import HybridBatchSampler
from bench.strategies.mbert import MaskedLMBatchSampler
from bench.strategies.monolingual import MonolingualBatchSampler
from bench.strategies.sampling import BatchStats

STRATEGIES = strategy_names()  # every registered strategy, the fifth included
KNOWN = ("monolingual", "crosslingual", "hybrid", "mbert")  # the ones whose feasibility is worked out below

LANGS = ("en", "de", "ar", "th")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def full_index(n_groups: int, languages=("en", "de", "ar")) -> ParallelIndex:
    """Every group in every language, as in XQuAD-R."""
    return ParallelIndex.from_pairs(((f"q{g}", lang) for g in range(n_groups) for lang in languages), languages)


def nested_index(sizes: dict[str, int]) -> ParallelIndex:
    """Groups 0..n_lang-1 exist in each language: unequal language sizes, many groups in several."""
    pairs = [(f"q{g}", lang) for lang, n in sizes.items() for g in range(n)]
    return ParallelIndex.from_pairs(pairs, tuple(sizes))


@st.composite
def indexes(draw, min_langs: int = 1) -> ParallelIndex:
    """Small indexes in which groups may miss languages."""
    languages = tuple(draw(st.lists(st.sampled_from(LANGS), min_size=min_langs, max_size=4, unique=True)))
    n_groups = draw(st.integers(1, 20))
    group_langs = [draw(st.sets(st.sampled_from(languages), min_size=1)) for _ in range(n_groups)]
    return ParallelIndex(tuple(f"q{i}" for i in range(n_groups)), languages, tuple(map(frozenset, group_langs)))


@functools.lru_cache(maxsize=None)
def configured(name: str):
    """The strategy as conf/strategy/<name>.yaml configures it."""
    (planned,) = plan_runs("config", [f"strategy={name}", "languages=2"], sweep=False)
    return planned.config.strategy


def build(strategy: str, index: ParallelIndex, batch_size: int, seed: int = 0, alpha: float | None = None):
    params = configured(strategy).params() | ({"alpha": alpha} if alpha is not None else {})
    return strategy_class(strategy)(**params).sampler(index, batch_size, seed)


def feasible(strategy: str, index: ParallelIndex, batch_size: int, alpha: float = 0.5) -> bool:
    """Whether a policy can form a batch, worked out independently of the sampler's own checks."""
    per_lang = [sum(lang in gl for gl in index.group_languages) for lang in index.languages]
    cross = sum(len(gl) >= 2 for gl in index.group_languages)
    mono_ok = min(per_lang) >= batch_size  # every language gets drawn, so each must fill a batch
    cross_ok = len(index.languages) >= 2 and cross >= batch_size
    return {
        "monolingual": mono_ok,
        "crosslingual": cross_ok,
        "hybrid": (alpha == 0 or mono_ok) and (alpha == 1 or cross_ok),
        "mbert": len(index.groups) >= batch_size,
    }.get(strategy)  # None: a strategy this file does not know (its own tests say when it is feasible)


def check_batches(batches, index: ParallelIndex, batch_size: int, strategy: str) -> None:
    for batch in batches:
        assert len(batch) == batch_size
        assert len({p.group for p in batch}) == batch_size, "a parallel group appears twice in a batch"
        for p in batch:
            assert {p.query_lang, p.passage_lang} <= index.group_languages[p.group], "language the group lacks"
        langs = {lang for p in batch for lang in (p.query_lang, p.passage_lang)}
        same = [p.query_lang == p.passage_lang for p in batch]
        if strategy == "monolingual":
            assert len(langs) == 1 and all(same)
        elif strategy == "crosslingual":
            assert not any(same)
        elif strategy == "mbert":
            assert all(same)
        elif strategy == "hybrid":  # each batch is wholly one kind or the other
            assert (len(langs) == 1 and all(same)) or not any(same)


# --- invariants on arbitrary indexes -------------------------------------------------------------


@FAST
@given(index=indexes(), strategy=st.sampled_from(STRATEGIES), batch_size=st.integers(1, 8), seed=st.integers(0, 99))
def test_batches_are_full_distinct_and_use_only_available_languages(index, strategy, batch_size, seed):
    can = feasible(strategy, index, batch_size)
    if can is False:
        with pytest.raises(ValueError):
            build(strategy, index, batch_size, seed)
        return
    try:
        sampler = build(strategy, index, batch_size, seed)
    except ConfigError:
        assert can is None, "a feasible configuration was refused"
        return
    batches = sampler.plan(15)  # small indexes: spans several epochs
    assert len(batches) == 15
    check_batches(batches, index, batch_size, strategy)


@FAST
@given(index=indexes(min_langs=2), batch_size=st.integers(1, 5), seed=st.integers(0, 99))
def test_hybrid_alpha_one_and_zero_reproduce_the_single_policies(index, batch_size, seed):
    if feasible("monolingual", index, batch_size):
        mono = MonolingualBatchSampler(index, batch_size, seed).plan(12)
        assert HybridBatchSampler(index, batch_size, seed, alpha=1.0).plan(12) == mono
    if feasible("crosslingual", index, batch_size):
        cross = CrossLingualBatchSampler(index, batch_size, seed).plan(12)
        assert HybridBatchSampler(index, batch_size, seed, alpha=0.0).plan(12) == cross


@FAST
@given(index=indexes(min_langs=2), batch_size=st.integers(1, 5), seed=st.integers(0, 99))
def test_exact_hybrid_at_alpha_one_and_zero_is_the_single_policies_batch_for_batch(index, batch_size, seed):
    if feasible("monolingual", index, batch_size):
        mono = MonolingualBatchSampler(index, batch_size, seed).plan(12)
        assert HybridBatchSampler(index, batch_size, seed, 1.0, "exact").plan(12) == mono
    if feasible("crosslingual", index, batch_size):
        cross = CrossLingualBatchSampler(index, batch_size, seed).plan(12)
        assert HybridBatchSampler(index, batch_size, seed, 0.0, "exact").plan(12) == cross


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
@pytest.mark.parametrize("steps", [7, 100, 200])
def test_exact_hybrid_realises_round_alpha_steps_for_every_seed(alpha, steps):
    """Every seed's plan has exactly round(alpha * steps) monolingual batches (halves up)."""
    expected = math.floor(alpha * steps + 0.5)
    plans = [HybridBatchSampler(full_index(40), 4, seed, alpha, "exact").plan(steps) for seed in range(12)]
    for plan in plans:
        assert BatchStats.of(plan).mono_batch_fraction == expected / steps
    positions = {tuple(i for i, b in enumerate(p) if len({p.query_lang for p in b} | {p.passage_lang for p in b}) == 1)
                 for p in plans}  # fmt: skip
    if 0 < expected < steps:
        assert len(positions) > 1  # the positions are the seed's: seeds differ in where the monolingual batches fall


def test_exact_hybrid_plan_is_repeatable_and_spread_over_the_run():
    sampler = HybridBatchSampler(full_index(40), 4, 3, 0.5, "exact")
    first, again = sampler.plan(200), sampler.plan(200)
    assert first == again
    mono = [i for i, b in enumerate(first) if b[0].query_lang == b[0].passage_lang]
    assert sum(i < 100 for i in mono) not in (0, 100)  # not all at the start or the end


def test_hybrid_schedule_is_validated_and_bernoulli_keeps_old_config_hashes():
    with pytest.raises(ConfigError, match="strategy.schedule must be one of bernoulli, exact"):
        strategy_class("hybrid")(temperature=0.05, alpha=0.5, schedule="coin")
    assert "schedule" not in strategy_class("hybrid")(temperature=0.05, alpha=0.5).params()
    assert strategy_class("hybrid")(temperature=0.05, alpha=0.5, schedule="exact").params()["schedule"] == "exact"
    (planned,) = plan_runs("config", ["strategy=hybrid", "languages=2", "strategy.schedule=exact"], sweep=False)
    assert planned.config.strategy.schedule == "exact"


def test_hybrid_alpha_one_works_with_a_single_language():
    index = full_index(8, ("en",))
    assert HybridBatchSampler(index, 4, 0, alpha=1.0).plan(5) == MonolingualBatchSampler(index, 4, 0).plan(5)


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.8])
def test_hybrid_monolingual_fraction_is_alpha(alpha):
    n = 3000
    stats = BatchStats.of(HybridBatchSampler(full_index(40), 4, seed=1, alpha=alpha).plan(n))
    assert abs(stats.mono_batch_fraction - alpha) < 4.5 * math.sqrt(alpha * (1 - alpha) / n)
    assert stats.cross_pair_fraction == pytest.approx(1 - stats.mono_batch_fraction)


# --- determinism and epochs -------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_planning_twice_gives_the_same_batches(strategy):
    sampler = build(strategy, full_index(12), 4, seed=7)
    first = sampler.plan(20)
    assert sampler.plan(20) == first
    assert build(strategy, full_index(12), 4, seed=7).plan(20) == first


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_different_seeds_give_different_batches(strategy):
    assert build(strategy, full_index(30), 5, seed=0).plan(6) != build(strategy, full_index(30), 5, seed=1).plan(6)


@pytest.mark.parametrize("strategy", ["monolingual", "crosslingual", "hybrid"])
def test_every_group_is_visited_once_per_epoch(strategy):
    batches = build(strategy, full_index(24), 6, seed=5).plan(3 * 4)
    for epoch in range(3):
        groups = [p.group for batch in batches[4 * epoch : 4 * epoch + 4] for p in batch]
        assert sorted(groups) == list(range(24))
    assert batches[:4] != batches[4:8]  # the order changes between epochs


def test_crosslingual_epoch_visits_every_multilingual_group_once_and_skips_the_rest():
    # groups 0..11 in en/de, 12..15 only en: 12 eligible groups, 3 batches of 4 per epoch
    index = nested_index({"en": 16, "de": 12})
    batches = CrossLingualBatchSampler(index, 4, seed=2).plan(6)
    for epoch in (batches[:3], batches[3:]):
        assert sorted(p.group for batch in epoch for p in batch) == list(range(12))


# --- languages ---------------------------------------------------------------------------------------


def test_groups_missing_a_language_are_never_paired_in_it():
    index = nested_index({"en": 30, "de": 20, "th": 10})
    for strategy in STRATEGIES:
        for batch in build(strategy, index, 5, seed=0).plan(200):
            for p in batch:
                assert p.group < {"en": 30, "de": 20, "th": 10}[p.query_lang]
                assert p.group < {"en": 30, "de": 20, "th": 10}[p.passage_lang]


def test_monolingual_languages_are_uniform_by_default():
    n = 3000
    counts = Counter(b[0].query_lang for b in MonolingualBatchSampler(full_index(20), 4, seed=0).plan(n))
    for lang in ("en", "de", "ar"):
        assert abs(counts[lang] / n - 1 / 3) < 4.5 * math.sqrt(2 / 9 / n)


def test_crosslingual_language_pairs_are_uniform_over_ordered_pairs():
    pairs = [(p.query_lang, p.passage_lang) for b in CrossLingualBatchSampler(full_index(10), 5, 0).plan(1200) for p in b]
    counts = Counter(pairs)
    assert set(counts) == set(itertools.permutations(("en", "de", "ar"), 2))
    for c in counts.values():
        assert abs(c / len(pairs) - 1 / 6) < 4.5 * math.sqrt(5 / 36 / len(pairs))


@pytest.mark.parametrize("exponent", [0.7, 0.0, 1.0])
def test_mlm_language_frequencies_follow_n_to_the_exponent(exponent):
    sizes = {"en": 300, "de": 100, "th": 30}
    items = [p for b in MaskedLMBatchSampler(nested_index(sizes), 8, 0, exponent=exponent).plan(1500) for p in b]
    total = sum(n**exponent for n in sizes.values())
    counts = Counter(p.query_lang for p in items)
    for lang, n in sizes.items():
        expected = n**exponent / total
        assert abs(counts[lang] / len(items) - expected) < 4.5 * math.sqrt(expected * (1 - expected) / len(items))


def test_mlm_batches_mix_languages_and_keep_query_and_passage_language_equal():
    batches = MaskedLMBatchSampler(full_index(30), 8, seed=0).plan(50)
    assert any(len({p.query_lang for p in b}) > 1 for b in batches)
    assert all(p.query_lang == p.passage_lang for b in batches for p in b)


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_batch_size_larger_than_the_groups_is_a_clear_error(strategy):
    with pytest.raises(ValueError, match=r"train\.batch_size=11 exceeds the 10 parallel groups"):
        build(strategy, full_index(10), 11)
    with pytest.raises(ValueError, match=r"train\.batch_size must be at least 1"):
        build(strategy, full_index(10), 0)


def test_monolingual_error_names_the_language_that_is_too_small():
    with pytest.raises(ValueError, match=r"train\.batch_size=8 exceeds the 5 parallel groups available in 'th'"):
        MonolingualBatchSampler(nested_index({"en": 20, "th": 5}), 8)


def test_crosslingual_needs_two_languages():
    with pytest.raises(ValueError, match="2 or more training languages"):
        CrossLingualBatchSampler(full_index(10, ("en",)), 2)
    with pytest.raises(ValueError, match="2 or more training languages"):
        HybridBatchSampler(full_index(10, ("en",)), 2, 0, alpha=0.5)


def test_errors_are_config_errors_that_entry_points_report():
    with pytest.raises(ConfigError):
        build("crosslingual", full_index(3), 4)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "half"])
def test_alpha_outside_the_unit_interval_is_rejected(alpha):
    with pytest.raises(ConfigError, match=r"strategy\.alpha"):
        strategy_class("hybrid")(temperature=0.05, alpha=alpha)


@pytest.mark.parametrize(("override", "message"), [
    ("strategy.temperature=0", r"strategy\.temperature must be a positive number"),
    ("strategy.mask_prob=1.5", r"strategy\.mask_prob must be in \(0, 1\)"),
    ("strategy.sampling_exponent=-1", r"strategy\.sampling_exponent must be finite and >= 0"),
    ("+strategy.language_weights=1", r"strategy: unknown key\(s\) strategy\.language_weights"),
])  # fmt: skip
def test_strategy_parameters_are_validated_naming_the_key(override, message):
    strategy = "mbert" if "mask" in override or "exponent" in override else "hybrid"
    with pytest.raises(ConfigError, match=message):
        plan_runs("config", [f"strategy={strategy}", override], sweep=False)


def test_registry_names_every_strategy_with_a_yaml_and_a_sampler_class():
    yamls = sorted(p.stem for p in (PROJECT_ROOT / "conf" / "strategy").glob("*.yaml"))
    assert sorted(STRATEGIES) == yamls  # one class per conf/strategy/*.yaml and vice versa
    assert set(KNOWN) <= set(STRATEGIES)
    index = full_index(10)
    expected = {"monolingual": MonolingualBatchSampler, "crosslingual": CrossLingualBatchSampler,
                "hybrid": HybridBatchSampler, "mbert": MaskedLMBatchSampler}  # fmt: skip
    for name, cls in expected.items():
        assert type(build(name, index, 2)) is cls
    for name in STRATEGIES:
        assert configured(name).name == name and build(name, index, 2).plan(3)
    with pytest.raises(ConfigError, match="unknown strategy 'x-y'; choose from monolingual, crosslingual, hybrid"):
        strategy_class("x-y")


# --- independent seeds -------------------------------------------------------------------------------


def _batch_keys(plan) -> list[frozenset]:
    return [frozenset(batch) for batch in plan]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_two_seeds_share_no_more_batches_than_chance(strategy):
    """Seed s+1 must not replay seed s's later epochs (as `seed + epoch` seeding did)."""
    index = full_index(60, ("en", "de", "ar", "th"))
    plans = {seed: build(strategy, index, 8, seed).plan(120) for seed in (0, 1)}
    shared = set(_batch_keys(plans[0])) & set(_batch_keys(plans[1]))
    # Chance of one identical 8-pair batch between two independent plans is astronomically small.
    assert not shared
    for shift in range(1, 40):  # and no plan is another's shifted by whole epochs
        assert plans[1][: 120 - shift] != plans[0][shift:]


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.75])
def test_hybrid_realised_fraction_is_consistent_with_alpha_for_every_seed(alpha):
    """Each seed's monolingual fraction is a binomial draw: inside its 99.9% interval, and the seeds differ."""
    n = 220  # the default budget at L=11
    fractions = [BatchStats.of(HybridBatchSampler(full_index(30), 8, seed, alpha).plan(n)).mono_batch_fraction
                 for seed in range(20)]  # fmt: skip
    half_width = 3.29 * math.sqrt(alpha * (1 - alpha) / n)
    assert all(abs(f - alpha) < half_width for f in fractions), fractions
    pooled = sum(fractions) / len(fractions)
    assert abs(pooled - alpha) < 3.29 * math.sqrt(alpha * (1 - alpha) / (n * len(fractions)))
    assert len(set(fractions)) > 5  # independent coins, not one stream shared across seeds


# --- index and stats ---------------------------------------------------------------------------------


def test_from_pairs_keeps_training_languages_and_first_seen_order():
    pairs = [("b", "en"), ("a", "de"), ("b", "de"), ("a", "fr"), ("c", "fr")]
    index = ParallelIndex.from_pairs(pairs, ["en", "de"])
    assert index.groups == ("b", "a")  # "c" exists only outside the training languages
    assert index.group_languages == (frozenset({"en", "de"}), frozenset({"de"}))
    assert index.languages_of(0) == ("en", "de")
    assert index.group_counts() == {"en": 1, "de": 2}


def test_index_rejects_languages_outside_the_training_set():
    with pytest.raises(ValueError):
        ParallelIndex(("q0",), ("en",), (frozenset({"en", "de"}),))


def test_batch_stats_summarise_a_plan():
    batches = [
        [PairRef(0, "en", "en"), PairRef(1, "en", "en")],  # monolingual
        [PairRef(2, "en", "de"), PairRef(3, "ar", "en")],  # cross-lingual
        [PairRef(4, "de", "de"), PairRef(5, "ar", "ar")],  # mixed mbert-style: not monolingual
    ]
    stats = BatchStats.of(batches)
    assert stats.mono_batch_fraction == pytest.approx(1 / 3)
    assert stats.cross_pair_fraction == pytest.approx(2 / 6)
    assert stats.languages_seen == ("ar", "de", "en")
    assert BatchStats.of([]) == BatchStats(None, None, ())
