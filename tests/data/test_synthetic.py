"""Tests for bench.data.synthetic: parallel structure copied exactly, determinism, distinct scripts and
lengths, tokenizer-visible word boundaries, and vocabulary pressure comparable to real languages."""

from __future__ import annotations

import time
import unicodedata

import pytest
from tokenizers import normalizers, pre_tokenizers

from bench.data.lareqa import split_by_article
from bench.data import synthetic
from bench.errors import ConfigError
from bench.data.pairs import texts_by_language
from bench.data.synthetic import LENGTH_FACTOR_RANGE, language_plan, synthesize, synthetic_language_codes
from bench.data.tokenizer import RunTokenizer, train_wordpiece, unknown_token_rate

N = 22  # two rounds over the 11 real languages


@pytest.fixture(scope="module")
def synth(xquad):
    return synthesize(xquad, N)


@pytest.fixture(scope="module")
def plan(xquad):
    return language_plan(xquad.languages, N)


@pytest.fixture(scope="module")
def synth_texts(synth):
    return texts_by_language(synth)


@pytest.fixture(scope="module")
def real_texts(xquad):
    return texts_by_language(xquad)


def letters(texts: list[str]) -> set[str]:
    return {c for c in set("".join(texts)) if unicodedata.category(c)[0] in "LM"}


def test_replacement_pools_are_fixed():
    """Old, fully assigned Unicode ranges: the same pools, hence the same text, on every Python."""
    letter_pool, ideograph_pool = synthetic._pools()
    assert (len(letter_pool), len(ideograph_pool)) == (22495, 70195)
    assert all(unicodedata.category(c)[0] == "L" for c in letter_pool + ideograph_pool)


def test_codes_are_zero_padded_and_keep_growing():
    assert synthetic_language_codes(3) == ("x000", "x001", "x002")
    assert synthetic_language_codes(1001)[-2:] == ("x999", "x1000")


@pytest.mark.parametrize("bad", [0, -1, True, 2.0, "8"])
def test_bad_language_count_names_the_key(xquad, bad):
    with pytest.raises(ConfigError, match="data.synthetic_languages"):
        synthesize(xquad, bad)


def test_sources_are_round_robin_over_the_base(xquad, plan):
    assert [spec.source for spec in plan] == list(xquad.languages) * 2


def test_structure_is_the_sources_exactly(xquad, synth, plan):
    assert synth.languages == synthetic_language_codes(N)
    assert synth.article_titles == xquad.article_titles
    for spec in plan:
        made, real = synth.by_lang[spec.code], xquad.by_lang[spec.source]
        assert made.lang == spec.code
        assert [(q.group_id, q.article, q.answer) for q in made.questions] == [
            (q.group_id, q.article, q.answer) for q in real.questions
        ]
        assert [(c.article, c.paragraph, c.sentence) for c in made.candidates] == [
            (c.article, c.paragraph, c.sentence) for c in real.candidates
        ]
        assert {q.lang for q in made.questions} | {c.lang for c in made.candidates} == {spec.code}
        assert all(q.text and c.text for q, c in zip(made.questions, made.candidates))


def test_article_split_matches_the_source(xquad, synth, plan):
    (train, heldout), (real_train, real_heldout) = split_by_article(synth, 0.25), split_by_article(xquad, 0.25)
    for spec in plan:
        for made, real in ((train, real_train), (heldout, real_heldout)):
            assert len(made.by_lang[spec.code].questions) == len(real.by_lang[spec.source].questions)
            assert len(made.by_lang[spec.code].candidates) == len(real.by_lang[spec.source].candidates)


def test_same_seed_same_text_and_languages_do_not_depend_on_the_count(xquad, synth):
    again = synthesize(xquad, 3)
    assert again.by_lang == {code: synth.by_lang[code] for code in again.languages}


def test_another_seed_changes_text_not_structure(xquad, synth):
    other = synthesize(xquad, 2, seed=1)
    for code in other.languages:
        made, first = other.by_lang[code].questions, synth.by_lang[code].questions
        assert [q.group_id for q in made] == [q.group_id for q in first]
        assert sum(a.text != b.text for a, b in zip(made, first)) > 0.9 * len(made)


def test_every_language_has_its_own_letters(synth_texts, real_texts):
    real = set().union(*map(letters, real_texts.values()))
    seen: set[str] = set()
    for code, texts in synth_texts.items():
        own = letters(texts)
        assert own and not own & seen and not own & real, code
        seen |= own


def test_non_letters_are_the_sources(synth_texts, real_texts, plan):
    for spec in plan:
        made = set("".join(synth_texts[spec.code])) - letters(synth_texts[spec.code])
        assert made <= set("".join(real_texts[spec.source])), spec.code


def test_length_factors_differ_and_lengths_follow_them(synth_texts, real_texts, plan):
    factors = [spec.length_factor for spec in plan]
    assert all(LENGTH_FACTOR_RANGE[0] <= f <= LENGTH_FACTOR_RANGE[1] for f in factors)
    assert len(set(factors)) == len(factors) and max(factors) - min(factors) > 0.2
    for spec in plan:
        made = sum(map(len, synth_texts[spec.code]))
        real = sum(len(" ".join(t.split())) for t in real_texts[spec.source])
        assert made / real == pytest.approx(spec.length_factor, abs=0.01), spec.code


def test_bert_sees_the_sources_words(synth_texts, real_texts, plan):
    """Mapped letters survive BERT's normaliser, CJK stays one piece per character, words stay words."""
    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()

    def pieces(texts):
        return sum(len(pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(t))) for t in texts)

    for spec in plan[:11]:  # one per source script
        if spec.source == "th":  # unsegmented: a repeated space adds no piece, so only dropping shows
            continue
        made, real = pieces(synth_texts[spec.code]), pieces(real_texts[spec.source])
        assert made / real == pytest.approx(spec.length_factor, abs=0.01), spec.code


def test_more_languages_fragment_a_fixed_vocabulary_like_real_ones(xquad, synth, synth_texts, real_texts):
    """At a fixed vocabulary, adding languages splits each into more tokens, about as real languages do."""
    synthetic, real = synth_texts, real_texts

    def tokens_per_text(texts_by_lang, train_on, probe):
        tokenizer = train_wordpiece([t for lang in train_on for t in texts_by_lang[lang]], 8000, 2)
        encodings = tokenizer.encode_batch(texts_by_lang[probe], add_special_tokens=False)
        return sum(len(e.ids) for e in encodings) / len(encodings), RunTokenizer(tokenizer, "test")

    few, few_tokenizer = tokens_per_text(synthetic, synth.languages[:2], "x000")
    many, _ = tokens_per_text(synthetic, synth.languages[:6], "x000")
    real_few, _ = tokens_per_text(real, xquad.languages[:2], "en")
    real_many, _ = tokens_per_text(real, xquad.languages[:6], "en")
    assert many / few > 1.2  # 8000 tokens: 29.0 -> 40.3 tokens per text (real en: 26.6 -> 33.6)
    assert 0.8 < (many / few) / (real_many / real_few) < 1.5
    # x011 copies x000's source (en) in another script: unseen, hence unknown, like an unseen real script.
    assert unknown_token_rate(few_tokenizer, synthetic["x011"]) > 0.8


def test_104_languages(xquad, record_property):
    """mBERT's language count; the build time is recorded (see the junit XML), not asserted."""
    start = time.perf_counter()
    big = synthesize(xquad, 104)
    record_property("build_104_s", round(time.perf_counter() - start, 2))
    assert big.n_questions() == 104 * 1190
    assert len(big.languages) == 104 and big.languages[-1] == "x103"


def test_rendering_only_some_languages_gives_them_exactly_as_in_the_full_set(xquad, synth):
    """A run's languages alone (what a selected vocabulary needs): each identical to its copy in the full set."""
    some = synthesize(xquad, N, only=["x001", synth.languages[-1]])
    assert some.languages == ("x001", synth.languages[-1])
    assert some.by_lang == {code: synth.by_lang[code] for code in some.languages}
