from dataclasses import replace

from bench.data.pairs import texts_by_language
from bench.data.tokenizer import cached_wordpiece, content_key, tokenizer_for_run, unknown_rates
from tests.conftest import compose

DEFAULT = compose()


def policy(name: str, **changes):
    return replace(compose(f"tokenizer={name}").tokenizer, **changes)


def test_shared_vocabulary_covers_every_language(xquad_split, tmp_path):
    train, heldout = xquad_split
    cfg = policy("shared-all", vocab_size=8000, cache_dir=str(tmp_path))
    tokenizer = tokenizer_for_run(cfg, DEFAULT.model, texts_by_language(train), ("en", "de"))
    rates = unknown_rates(tokenizer, texts_by_language(heldout))
    assert max(rates.values()) < 0.03, rates


def test_selected_languages_leave_other_scripts_unknown(xquad_split, tmp_path):
    train, heldout = xquad_split
    cfg = policy("selected-fixed", vocab_size=8000, cache_dir=str(tmp_path))
    tokenizer = tokenizer_for_run(cfg, DEFAULT.model, texts_by_language(train), ("en", "de"))
    rates = unknown_rates(tokenizer, texts_by_language(heldout))
    assert rates["en"] < 0.02
    for lang in ("ar", "zh", "hi", "ru", "el", "th"):
        assert rates[lang] > 0.5, (lang, rates[lang])


def test_scaled_policy_grows_with_languages(xquad_split, tmp_path):
    train, _ = xquad_split
    cfg = policy("selected-scaled", per_language_vocab=1500, cache_dir=str(tmp_path))
    texts = texts_by_language(train)
    small = tokenizer_for_run(cfg, DEFAULT.model, texts, ("en", "de"))
    large = tokenizer_for_run(cfg, DEFAULT.model, texts, ("en", "de", "ru", "zh"))
    assert small.vocab_size <= 3000 < large.vocab_size <= 6000


def test_cache_is_keyed_by_content(tmp_path):
    texts = ["hello world", "hallo welt"] * 20
    first = cached_wordpiece(texts, 200, 1, tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 1
    second = cached_wordpiece(texts, 200, 1, tmp_path)
    assert first.get_vocab() == second.get_vocab()
    assert content_key(texts, 200, 1) != content_key(texts + ["bonjour"], 200, 1)
    assert content_key(texts, 200, 1) != content_key(texts, 300, 1)


def test_thai_sentences_are_not_swallowed_as_one_unknown_word(xquad_split, tmp_path):
    train, heldout = xquad_split
    cfg = policy("shared-all", vocab_size=8000, cache_dir=str(tmp_path))
    tokenizer = tokenizer_for_run(cfg, DEFAULT.model, texts_by_language(train), ("th",))
    sentence = heldout.by_lang["th"].candidates[0].text
    assert len(sentence) > 100
    assert tokenizer.unk_id not in tokenizer.encode([sentence], "passage")[0]
