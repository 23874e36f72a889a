"""Synthetic languages (`data=synthetic`): many parallel "languages" derived from a real LAReQA dataset.

What it is for: asking how training cost grows past the 11 real XQuAD-R languages (to mBERT's 104
and beyond). It is a cost model, not a linguistic one; retrieval quality on it means little.

Construction, for `synthesize(base, n_languages, seed)`:
  codes     `x000`, `x001`, ... (`f"x{i:03d}"`, so `x1000` follows `x999`). Language i depends only
            on (base, seed, i), never on n_languages: the first k languages of a 104-language build
            are exactly a k-language build, so `languages=16` over it is the same data as a 16-build.
  source    language i copies real language `base.languages[i % len(base.languages)]` (round-robin;
            for XQuAD-R x000 <- en, x001 <- de, ..., x010 <- th, x011 <- en, ...), so every real
            script, segmentation and sentence-length profile is represented.
  structure identical to the source: the same articles, paragraphs, sentence candidates, questions,
            group ids and answer indices, and the base's article titles, so pair counts, samplers and
            `split_by_article` behave exactly as on real data. (Real languages differ slightly in
            candidate counts, e.g. th has 852 sentences where en has 1180; each synthetic language
            keeps its source's count.)
  script    a per-language bijection replaces every letter and combining mark (Unicode L*, M*) of
            the source with a character of its own, applied with one `str.translate` table.
            Whitespace, punctuation, digits, symbols and format characters are kept, so word
            boundaries, numbers and BERT's punctuation splits survive. Replacements come from two
            fixed pools of old (Unicode <= 9), caseless, decomposition-free letters, handed out in
            consecutive slices and shuffled within the slice:
              - characters BERT treats as Chinese (split one per token) map into CJK ideographs
                (Extension B first, rare characters real Chinese text does not use), so
                zh-derived languages stay one pre-token per character;
              - all other letters map into non-CJK syllabaries (Hangul syllables, Yi, Canadian
                syllabics, cuneiform, hieroglyphs, Vai, Bamum, Anatolian, Tangut), so space-free
                Thai stays space-free (one long pre-token per phrase) like its source.
            Letter sets are disjoint between synthetic languages, and from the real base's letters,
            while the pools last: for XQuAD-R the first 191 languages (x000-x190; the 22,495-letter
            non-CJK pool runs out first, at ~1,300 letters per 11 languages). Past that the slices
            wrap around and later languages reuse earlier letters with a different shuffle, like
            two languages sharing the Latin script.
  length    a per-language factor f in [0.8, 1.3] (seeded) shortens or lengthens every text by
            dropping (f < 1) or repeating (f > 1) a fraction |f - 1| of its units, evenly spread
            (Bresenham) from a seeded phase; a text's first unit is never dropped. Units are
            whitespace-separated words, or characters for sources whose mean "word" is longer than
            12 characters (zh, th: unsegmented scripts). Whitespace runs collapse to one space.
  seed      changes the shuffles, factors and phases, never the structure or the source mapping.
            Keep it fixed across a sweep (as real data is fixed) unless you mean to vary the data.

What it does not model:
  - real linguistic differences: a synthetic language is its source's translation with letters
    renamed and words stuttered or dropped, so word order, morphology, word frequencies, subword
    statistics (up to the renaming) and sentence structure are the source's;
  - typological variation beyond script and length; no code-switching, no shared loanwords, no
    related languages sharing subwords (all languages derived from one source share the same
    digits and punctuation, nothing else);
  - realistic alphabet sharing: real 104-language data uses a few dozen scripts, most languages
    Latin, whereas here every language brings a new alphabet (75-160 letters, plus ~2,060
    ideographs for a zh-derived language). Character coverage, and the share of a fixed WordPiece
    vocabulary spent on single characters, is therefore a worst case: 104 languages have 33,327
    distinct characters, so a 16k vocabulary trained on all of them holds only characters
    (44,189 entries with the ## forms) and every language is tokenised character by character;
  - cross-lingual difficulty: languages derived from the same source are trivially aligned (a
    character mapping of the same translation, up to dropped/repeated words); languages from
    different sources are aligned exactly as the real translations are.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from bench.data.lareqa import Candidate, LanguageData, LareqaDataset, Question
from bench.errors import ConfigError

CODE_PREFIX = "x"
LENGTH_FACTOR_RANGE = (0.8, 1.3)
# Mean characters per whitespace-separated word above which a source counts as unsegmented
# (XQuAD-R: zh 16.4, th 23.5; every segmented language is below 7).
UNSEGMENTED_MEAN_WORD_CHARS = 12.0
_SEPARATOR = "\0"  # joins units for one translate call; never in real text (BERT deletes it)

# Characters tokenizers' BertNormalizer(handle_chinese_chars=True) isolates, as in BERT's
# `_is_chinese_char` (the 0x2B920 start is BERT's, kept so the split matches the tokenizer).
_BERT_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)
# Replacement pools, in hand-out order. Ranges are as of Unicode 9 or older, so every Python the
# project supports agrees on them; compatibility ideographs (F900...) are left out because NFC
# would rewrite them.
_CJK_POOL_RANGES = ((0x20000, 0x2A6D6), (0x3400, 0x4DB5), (0x4E00, 0x9FA5))
_LETTER_POOL_RANGES = (
    (0xAC00, 0xD7A3),  # Hangul syllables (precomposed, NFC-stable)
    (0xA000, 0xA48C),  # Yi syllables
    (0x1401, 0x166C),  # Unified Canadian Aboriginal syllabics
    (0x12000, 0x12399),  # Cuneiform
    (0x13000, 0x1342E),  # Egyptian hieroglyphs
    (0xA500, 0xA60B),  # Vai
    (0x16800, 0x16A38),  # Bamum supplement
    (0x14400, 0x14646),  # Anatolian hieroglyphs
    (0x17000, 0x187EC),  # Tangut
)


@dataclass(frozen=True)
class SyntheticLanguage:
    """How one synthetic language is made: its code, the real language it copies, its length factor."""

    code: str
    source: str
    length_factor: float
    phase: float  # where the evenly spaced drops/repeats start, in [0, 1)


def synthetic_language_codes(n: int) -> tuple[str, ...]:
    """The codes of the first n synthetic languages: x000, x001, ..."""
    _check_count(n)
    return tuple(f"{CODE_PREFIX}{i:03d}" for i in range(n))


def language_plan(base_languages: tuple[str, ...], n_languages: int, seed: int = 0) -> tuple[SyntheticLanguage, ...]:
    """Code, source and length profile of each synthetic language (no text needed)."""
    if not base_languages:
        raise ConfigError("data.root: the base dataset has no languages to derive synthetic ones from")
    plan = []
    for i, code in enumerate(synthetic_language_codes(n_languages)):
        rng = _rng(seed, i, "length")
        low, high = LENGTH_FACTOR_RANGE
        factor = low + (high - low) * rng.random()
        plan.append(SyntheticLanguage(code, base_languages[i % len(base_languages)], factor, rng.random()))
    return tuple(plan)


def synthesize(base: LareqaDataset, n_languages: int, seed: int = 0, only: Iterable[str] | None = None) -> LareqaDataset:
    """A parallel dataset of n_languages synthetic languages derived from base (see the module docstring).
    `only` renders just those codes (each exactly as in the full set: the scripts of every language are still
    drawn in order, rendering the texts is what costs), for a run that needs its own languages and no others."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    plan = language_plan(base.languages, n_languages, seed)
    corpora = {lang: _SourceCorpus.of(base.by_lang[lang]) for lang in {spec.source for spec in plan}}
    letters, ideographs = _pools()
    next_letter = next_ideograph = 0
    wanted = None if only is None else set(only)
    by_lang: dict[str, LanguageData] = {}
    for i, spec in enumerate(plan):
        corpus = corpora[spec.source]
        rng = _rng(seed, i, "script")
        table = _char_table(corpus.letters, letters, next_letter, rng)
        table |= _char_table(corpus.ideographs, ideographs, next_ideograph, rng)
        next_letter += len(corpus.letters)
        next_ideograph += len(corpus.ideographs)
        if wanted is not None and spec.code not in wanted:
            continue
        texts = corpus.render(table, spec.length_factor, spec.phase)
        by_lang[spec.code] = _relabel(base.by_lang[spec.source], spec.code, texts)
    return LareqaDataset("synthetic", by_lang, base.article_titles)


@dataclass(frozen=True)
class _SourceCorpus:
    """One real language's texts (questions, then candidates) cut into units for length changes."""

    types: tuple[str, ...]  # distinct units: words, or characters for unsegmented scripts
    unit_types: np.ndarray  # the texts, concatenated, as indices into types
    bounds: np.ndarray  # text t is unit_types[bounds[t]:bounds[t + 1]]
    joiner: str  # " " between words, "" between characters
    letters: tuple[str, ...]  # non-CJK letters and marks, sorted: what the letter pool replaces
    ideographs: tuple[str, ...]  # characters BERT splits as Chinese, sorted

    @classmethod
    def of(cls, data: LanguageData) -> _SourceCorpus:
        texts = [q.text for q in data.questions] + [c.text for c in data.candidates]
        if any(_SEPARATOR in text for text in texts):
            raise ValueError(f"{data.lang}: a text contains the NUL character used as separator")
        words = [text.split() for text in texts]
        n_words = sum(map(len, words))
        n_chars = sum(map(len, texts)) - sum(text.count(" ") for text in texts)
        unsegmented = n_words > 0 and n_chars / n_words > UNSEGMENTED_MEAN_WORD_CHARS
        if unsegmented:  # characters as units: numpy finds the distinct ones without a Python loop
            codepoints = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
            distinct, unit_types = np.unique(codepoints, return_inverse=True)
            types = tuple(map(chr, distinct.tolist()))
            lengths = [len(text) for text in texts]
        else:
            ids: dict[str, int] = {}
            unit_types = np.array([ids.setdefault(word, len(ids)) for ws in words for word in ws], dtype=np.int64)
            types = tuple(ids)
            lengths = [len(ws) for ws in words]
        bounds = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
        alphabet = sorted(c for c in set("".join(texts)) if unicodedata.category(c)[0] in "LM")
        ideographs = tuple(c for c in alphabet if _is_bert_cjk(c))
        letters = tuple(c for c in alphabet if not _is_bert_cjk(c))
        return cls(types, unit_types.astype(np.int64), bounds, "" if unsegmented else " ", letters, ideographs)

    def render(self, table: dict[int, str], factor: float, phase: float) -> list[str]:
        """Every text in the new script, with a fraction |factor - 1| of its units dropped or repeated."""
        # Translating each distinct unit once, not every occurrence, is most of the speed.
        mapped = np.array(_SEPARATOR.join(self.types).translate(table).split(_SEPARATOR), dtype=object)
        n = len(self.unit_types)
        # Unit p is hit when floor(p * rate + phase) steps up: round(n * rate) hits, evenly spaced,
        # continuing across text boundaries so short texts are not all hit at the same position.
        ticks = np.floor(np.arange(n + 1) * abs(factor - 1.0) + phase)
        hit = np.diff(ticks) > 0
        if factor < 1.0:
            # Never empty a text: a drop due on a text's first unit moves to its second (hits are
            # at least 1 / rate >= 5 units apart, so the second is free), or is lost if there is none.
            starts, sizes = self.bounds[:-1], np.diff(self.bounds)
            due = np.flatnonzero(sizes > 0)
            due = due[hit[starts[due]]]
            hit[starts[due]] = False
            hit[starts[due[sizes[due] > 1]] + 1] = True
            counts = 1 - hit.astype(np.int64)
        else:
            counts = 1 + hit.astype(np.int64)
        units = mapped[np.repeat(self.unit_types, counts)].tolist()
        bounds = np.concatenate(([0], np.cumsum(counts)))[self.bounds].tolist()
        join = self.joiner.join
        return [join(units[a:b]) for a, b in zip(bounds, bounds[1:])]


def _relabel(source: LanguageData, code: str, texts: list[str]) -> LanguageData:
    """The source's questions and candidates, same positions and answers, with new language and texts."""
    n_questions = len(source.questions)
    questions = tuple(
        Question(q.group_id, code, text, q.article, q.answer) for q, text in zip(source.questions, texts[:n_questions], strict=True)
    )
    candidates = tuple(
        Candidate(code, c.article, c.paragraph, c.sentence, text) for c, text in zip(source.candidates, texts[n_questions:], strict=True)
    )
    return LanguageData(code, questions, candidates)


def _char_table(alphabet: tuple[str, ...], pool: tuple[str, ...], start: int, rng: random.Random) -> dict[int, str]:
    """Map alphabet onto pool[start : start + len(alphabet)] (wrapping), shuffled: a bijection."""
    targets = [pool[(start + j) % len(pool)] for j in range(len(alphabet))]
    keys = [rng.random() for _ in targets]  # random() is the only draw Python keeps stable across versions
    shuffled = [target for _, target in sorted(zip(keys, targets))]
    return {ord(char): target for char, target in zip(alphabet, shuffled)}


@lru_cache(maxsize=1)
def _pools() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(non-CJK letters, CJK ideographs) to hand out, in order."""

    def letters(ranges):
        return tuple(chr(cp) for lo, hi in ranges for cp in range(lo, hi + 1) if unicodedata.category(chr(cp))[0] == "L")

    return letters(_LETTER_POOL_RANGES), letters(_CJK_POOL_RANGES)


def _is_bert_cjk(char: str) -> bool:
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in _BERT_CJK_RANGES)


def _rng(seed: int, index: int, purpose: str) -> random.Random:
    """One stream per (seed, language, purpose): str seeds hash the same on every platform and Python."""
    return random.Random(f"bench.data.synthetic:{seed}:{index}:{purpose}")


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"data.synthetic_languages must be a positive integer, got {n!r}")
