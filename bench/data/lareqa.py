"""LAReQA datasets (XQuAD-R, MLQA-R): questions and candidate sentences, parsed the LAReQA way.

Candidates are the sentences given by each paragraph's `sentence_breaks` ([start, end)
character offsets; the `sentences` field is not trusted), the answer is the sentence that
contains `answer_start`, and a question's `id` is its parallel-group id across languages.
Candidates are keyed by position (article, paragraph, sentence), never by text.
"""

from __future__ import annotations

import functools
from collections import Counter

import gzip
import hashlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

from bench import PROJECT_ROOT
from bench.errors import ConfigError, DataError


@dataclass(frozen=True)
class Candidate:
    """One candidate sentence of one language's pool."""

    lang: str
    article: int
    paragraph: int
    sentence: int
    text: str


@dataclass(frozen=True)
class Question:
    """A question with its answer sentence (an index into its language's candidates)."""

    group_id: str
    lang: str
    text: str
    article: int
    answer: int


@dataclass(frozen=True)
class LanguageData:
    """Everything one language contributes: its questions and its candidate pool."""

    lang: str
    questions: tuple[Question, ...]
    candidates: tuple[Candidate, ...]

    def answer_text(self, question: Question) -> str:
        return self.candidates[question.answer].text


@dataclass(frozen=True)
class LareqaDataset:
    """A parallel retrieval dataset: per-language questions and candidates."""

    name: str
    by_lang: dict[str, LanguageData]
    article_titles: tuple[str, ...]

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.by_lang)

    def n_questions(self) -> int:
        return sum(len(d.questions) for d in self.by_lang.values())

    def n_candidates(self) -> int:
        return sum(len(d.candidates) for d in self.by_lang.values())

    def restrict_articles(self, keep: set[int], suffix: str) -> LareqaDataset:
        """The same dataset limited to some articles (questions and candidates alike)."""
        return LareqaDataset(
            name=f"{self.name}:{suffix}",
            by_lang={lang: _keep_articles(d, keep) for lang, d in self.by_lang.items()},
            article_titles=self.article_titles,
        )


def _keep_articles(data: LanguageData, keep: set[int]) -> LanguageData:
    old_to_new: dict[int, int] = {}
    candidates = []
    for old, cand in enumerate(data.candidates):
        if cand.article in keep:
            old_to_new[old] = len(candidates)
            candidates.append(cand)
    questions = tuple(
        Question(q.group_id, q.lang, q.text, q.article, old_to_new[q.answer])
        for q in data.questions
        if q.article in keep
    )
    return LanguageData(data.lang, questions, tuple(candidates))


def resolve_data_path(path: str | Path) -> Path:
    """Relative data paths are read against the repository root, not the working directory."""
    path = Path(path)
    return path if path.is_absolute() else PROJECT_ROOT / path


def read_squad_file(path: Path) -> dict:
    """Read one gzipped SQuAD-format JSON file; any failure becomes a one-line DataError."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            payload = json.load(handle)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"data file {path} is not valid gzipped JSON ({exc})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise DataError(f"data file {path} has no SQuAD-style 'data' list")
    return payload


def answer_sentence(breaks: list[list[int]], answer_start: int) -> int:
    """Index of the sentence whose [start, end) span contains answer_start."""
    for index, (start, end) in enumerate(breaks):
        if start <= answer_start < end:
            return index
    raise ValueError(f"answer_start {answer_start} lies in no sentence {breaks}")


def parse_language(lang: str, payload: dict, source: Path) -> tuple[LanguageData, tuple[str, ...]]:
    """Turn one language's SQuAD payload into questions and positional candidates."""
    questions: list[Question] = []
    candidates: list[Candidate] = []
    titles: list[str] = []
    try:
        for a_idx, article in enumerate(payload["data"]):
            titles.append(str(article.get("title", a_idx)))
            for p_idx, para in enumerate(article["paragraphs"]):
                context, breaks = para["context"], para["sentence_breaks"]
                first = len(candidates)
                for s_idx, (start, end) in enumerate(breaks):
                    candidates.append(Candidate(lang, a_idx, p_idx, s_idx, context[start:end]))
                for qa in para["qas"]:
                    sentence = answer_sentence(breaks, qa["answers"][0]["answer_start"])
                    questions.append(Question(qa["id"], lang, qa["question"], a_idx, first + sentence))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise DataError(f"data file {source} is malformed: {type(exc).__name__}: {exc}") from None
    return LanguageData(lang, tuple(questions), tuple(candidates)), tuple(titles)


@dataclass(frozen=True)
class DataConfig:
    """The data.* settings (`conf/data/*.yaml`): the LAReQA-style dataset a run trains on and how it is split."""

    name: str
    root: str
    languages: tuple[str, ...] | None  # every language the data has, in the documented order (null: synthetic)
    heldout_fraction: float  # articles held out for evaluation (by SHA-1 of the title)
    synthetic_languages: int | None = None  # data=synthetic: how many languages to derive
    source_languages: tuple[str, ...] | None = None  # files to read when they differ from `languages`

    def __post_init__(self) -> None:
        if not (isinstance(self.heldout_fraction, float) and 0 < self.heldout_fraction < 1):
            raise ConfigError(f"data.heldout_fraction must be in (0, 1), got {self.heldout_fraction!r}")

    @property
    def files(self) -> tuple[str, ...]:
        """The languages whose `<root>/<lang>.json.gz` files this data is built from."""
        return self.source_languages or self.languages


def load_lareqa(name: str, root: str | Path, languages: tuple[str, ...]) -> LareqaDataset:
    """Load the given languages of a LAReQA dataset from `<root>/<lang>.json.gz`.

    Each file is parsed once per process (`parsed_file`): a run's training data, its evaluation sets, its
    trimmed vocabulary and its curve all come from the same files, and the parsed data is immutable."""
    directory = resolve_data_path(root)
    by_lang: dict[str, LanguageData] = {}
    titles: tuple[str, ...] = ()
    for lang in languages:
        path = directory / f"{lang}.json.gz"
        if not path.is_file():
            raise DataError(f"data file not found: {path}")
        stat = path.stat()
        data, lang_titles = parsed_file(lang, str(path), stat.st_mtime_ns, stat.st_size)
        by_lang[lang] = data
        titles = titles or lang_titles
    return LareqaDataset(name, by_lang, titles)


PARSES: Counter[str] = Counter()  # file path -> times parsed in this process (the once-per-run test reads it)


@functools.lru_cache(maxsize=64)
def parsed_file(lang: str, path: str, mtime_ns: int, size: int) -> tuple[LanguageData, tuple[str, ...]]:
    """One language file, parsed; keyed by its modification time and size, so a changed file is read again."""
    PARSES[path] += 1
    return parse_language(lang, read_squad_file(Path(path)), Path(path))


def heldout_articles(titles: tuple[str, ...], fraction: float) -> set[int]:
    """Deterministic article-level split: the articles whose SHA-1(title) sorts first are held out.

    Hashing titles (not shuffling with a seed) keeps the split stable across machines,
    library versions and language subsets, and keeps whole articles on one side so no
    paragraph's sentences leak between training and evaluation.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"data.heldout_fraction must be in (0, 1), got {fraction}")
    n_heldout = max(1, round(len(titles) * fraction))
    return set(articles_by_hash(titles)[:n_heldout])


def articles_by_hash(titles: tuple[str, ...]) -> list[int]:
    """Article indices in the order of SHA-1(title): the order in which articles are held out."""
    return sorted(range(len(titles)), key=lambda i: hashlib.sha1(titles[i].encode()).hexdigest())


def split_by_article(dataset: LareqaDataset, fraction: float) -> tuple[LareqaDataset, LareqaDataset]:
    """(train, heldout) parts of a parallel dataset, split by article."""
    heldout = heldout_articles(dataset.article_titles, fraction)
    train = set(range(len(dataset.article_titles))) - heldout
    return dataset.restrict_articles(train, "train"), dataset.restrict_articles(heldout, "heldout")
