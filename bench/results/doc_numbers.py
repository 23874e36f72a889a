"""Every number in the prose of README.md and docs/*.md, recomputed from the committed file it comes from.

A number in those documents is either generated (inside a `<!-- generated:NAME -->` block, which
tests/results/test_readme_sync.py regenerates) or registered in docs/numbers.yaml: the exact text as the document
has it, and recipes that recompute each number in that text from a committed file (results/, data/, conf/, or the
code constant a sentence describes). Numbers that measure nothing (a year, an arXiv id, a version, the point L=8 of
a grid) are let through by a short list of patterns in the same file, each with its reason.
tests/results/test_doc_numbers.py evaluates the registry and scans the documents; every offender is reported at
once, with its file and line.

A recipe is a named function below with keyword arguments, never an expression string: the registry is data, so
reading it runs no code it names. A value spec is `{recipe: NAME, file: PATH, ...}`, optionally followed, in the
order written, by arithmetic on another spec or a number (`over`, `times`, `plus`, `minus`) and a `unit` to express
bytes or seconds in; the entry's `format` renders each value (a format spec such as ".2f" or ",d", or a named one).
"""

from __future__ import annotations

import functools
import glob
import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from bench import PROJECT_ROOT
from bench.data.lareqa import load_lareqa, split_by_article
from bench.errors import DataError

REGISTRY = PROJECT_ROOT / "docs" / "numbers.yaml"
# A number as prose writes it: 7, 2,665, 0.0058, +1.8, −21. Not inside a word or an identifier (fp32, x000, p90,
# mE5-small, Apache-2.0, 2e-5), nor the tail of a dotted version (the 0 of 2.13.0).
NUMBER = re.compile(r"(?<![\w.])(?<![A-Za-z]-)[−+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")
# What is not prose: generated blocks (their own test), fenced code, inline code (commands, paths, keys; it may
# wrap, but never across a blank line), link targets, HTML comments and bare URLs.
NOT_PROSE = re.compile(
    r"<!-- generated:([\w.:-]+) -->.*?<!-- /generated:\1 -->|^```.*?^```|`[^`\n]*(?:\n(?![ \t]*\n)[^`\n]*)*`"
    r"|\]\([^)\s]*\)|<!--.*?-->|https?://\S+",
    re.S | re.M,
)
ARITHMETIC = {"over": operator.truediv, "times": operator.mul, "plus": operator.add, "minus": operator.sub}
UNITS = {"KiB": 2**-10, "MiB": 2**-20, "GiB": 2**-30, "ms": 1e3, "µs": 1e6, "min": 1 / 60, "h": 1 / 3600}
RECIPES: dict[str, Callable[..., list]] = {}


def documents(root: Path = PROJECT_ROOT) -> list[Path]:
    """The documents whose prose is checked: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


# ---- the registry ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """Registered text: where it stands, what it says, and how each of its numbers is recomputed."""

    docs: tuple[str, ...]
    text: str
    values: tuple[dict, ...]
    formats: tuple[str, ...]


@dataclass(frozen=True)
class Allowance:
    """A pattern whose matches hold numbers that measure nothing, and why."""

    pattern: re.Pattern
    why: str


@dataclass(frozen=True)
class Registry:
    """docs/numbers.yaml: the registered texts and the allowances."""

    entries: tuple[Entry, ...]
    allowances: tuple[Allowance, ...]


def _entry(raw: dict, index: int) -> Entry:
    missing = {"doc", "text", "values"} - set(raw)
    if missing:
        raise DataError(f"docs/numbers.yaml: numbers[{index}] needs {sorted(missing)}")
    docs = (raw["doc"],) if isinstance(raw["doc"], str) else tuple(raw["doc"])
    formats = raw.get("format", "g")
    return Entry(docs, raw["text"], tuple(raw["values"]), (formats,) if isinstance(formats, str) else tuple(formats))


def load_registry(path: Path = REGISTRY) -> Registry:
    raw = yaml.safe_load(path.read_text())
    entries = tuple(_entry(item, i) for i, item in enumerate(raw.get("numbers") or []))
    allowances = tuple(Allowance(re.compile(a["pattern"]), a["why"]) for a in raw.get("allow") or [])
    return Registry(entries, allowances)


# ---- recipes: each reads one committed file (or directory) and returns a list of values ----------------------


def recipe(name: str):
    """Register a recipe under the name the registry calls it by."""

    def register(function):
        RECIPES[name] = function
        return function

    return register


@functools.lru_cache(maxsize=None)
def _frame(path: str) -> pd.DataFrame:
    files = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
    if not files or not all(Path(f).is_file() for f in files):
        raise DataError(f"no such file: {path}")
    read = pd.read_csv if path.endswith(".csv") else pd.read_parquet
    return pd.concat([read(f) for f in files], ignore_index=True)


def _select(frame: pd.DataFrame, where: dict | None, where_not: dict | None) -> pd.DataFrame:
    keep = pd.Series(True, index=frame.index)
    for column, wanted in (where or {}).items():
        keep &= frame[column].isin(wanted if isinstance(wanted, list) else [wanted])
    for column, unwanted in (where_not or {}).items():
        keep &= ~frame[column].isin(unwanted if isinstance(unwanted, list) else [unwanted])
    return frame[keep]


def _statistic(series: pd.Series, stat: str) -> list:
    """One statistic of a selection, as a list: 'distinct' gives every distinct value in order."""
    if stat in ("first", "unique"):  # one cell, or one value shared by every row: anything else is ambiguous
        chosen = series if stat == "first" else series.drop_duplicates()
        if len(chosen) != 1:
            raise DataError(f"{stat!r} needs exactly one {'row' if stat == 'first' else 'value'}, found {len(chosen)}")
        return [chosen.iloc[0]]
    if stat == "distinct":
        return sorted(series.drop_duplicates())
    if stat not in ("min", "max", "median", "mean", "sum", "count", "nunique"):
        raise DataError(f"unknown stat {stat!r}")
    return [getattr(series, stat)()]


def _statistics(series: pd.Series, stat) -> list:
    return [value for s in ([stat] if isinstance(stat, str) else stat) for value in _statistic(series, s)]


@recipe("table")
def table(root: Path, file: str, column: str, stat="first", where=None, where_not=None, by=None, per_group="sum"):
    """Statistics of one column of a parquet or CSV table (a glob concatenates files), over the rows `where` selects;
    with `by`, of the per-group `per_group` values (e.g. the sum of wall_s per seed, then its min and max)."""
    frame = _select(_frame(str(root / file)), where, where_not)
    return _statistics(frame.groupby(by)[column].agg(per_group) if by else frame[column], stat)


def _walk(value, path: list):
    for key in path:
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


@recipe("json")
def json_value(root: Path, file: str, path: list, line: int | None = None):
    """A value inside a JSON file by its path of keys and indices; in a JSON-lines file, of line `line`."""
    text = (root / file).read_text()
    document = json.loads(text.splitlines()[line]) if line is not None else json.loads(text)
    return [_walk(document, path)]


@recipe("jsonl")
def json_lines(root: Path, file: str, path: list, stat="unique"):
    """Statistics of one value over the lines of a JSON-lines file that have it (a sweep's calibration at each of
    its starts, say); 'unique' needs one value shared by those lines, which may be text (the CPU model)."""
    lines = [json.loads(line) for line in (root / file).read_text().splitlines() if line.strip()]
    found = []
    for line in lines:
        try:
            found.append(_walk(line, path))
        except (KeyError, IndexError):
            continue  # a sweep's closing line has no calibration of its start, say
    return _statistics(pd.Series(found), stat)


@recipe("text")
def text_match(root: Path, file: str, pattern: str):
    """The groups of the first match of a regular expression in a text file (a benchmark's printed output, or a
    constant in the code a sentence describes), as numbers where they read as numbers."""
    found = re.search(pattern, (root / file).read_text(), re.M)
    if not found:
        raise DataError(f"{file}: no match for {pattern!r}")
    return [_number_or_text(group) for group in found.groups()]


@recipe("conf")
def conf_value(root: Path, file: str, key: str):
    """A value of a config file by its dotted key; a list, or a comma-separated sweep axis ('2,4,8,11'), gives
    each of its items."""
    value = _walk(yaml.safe_load((root / file).read_text()), key.split("."))
    items = value if isinstance(value, list) else str(value).split(",") if isinstance(value, str) else [value]
    return [_number_or_text(str(item).strip()) if isinstance(item, str) else item for item in items]


@recipe("ln")
def natural_log(root: Path, file: str, key: str):
    """The natural logarithm of a config value: the InfoNCE or softmax loss of a uniform guess over that many."""
    return [math.log(conf_value(root, file, key)[0])]


@recipe("count")
def count_items(root: Path, file: str, key: str):
    """How many items a config list or mapping holds (claims, evaluation sets)."""
    return [len(_walk(yaml.safe_load((root / file).read_text()), key.split(".")))]


@recipe("lareqa")
def lareqa_fact(root: Path, file: str, fact: str, part="all", conf=None, language=None, exclude=(), stat="sum"):
    """A fact of a shipped LAReQA dataset (directory `file`): its number of `languages` or `articles`, or its
    `questions` or `candidates`, of one `language` or a statistic over languages (less `exclude`): in all, or in
    the `train` or `heldout` part as the data config `conf` splits it (its heldout_fraction)."""
    fraction = conf_value(root, conf, "heldout_fraction")[0] if part != "all" else None
    dataset = _lareqa_part(str(root / file), part, fraction)
    if fact == "languages":
        return [len(dataset.languages)]
    if fact == "articles":
        return [len({q.article for d in dataset.by_lang.values() for q in d.questions})]
    if fact not in ("questions", "candidates"):
        raise DataError(f"unknown LAReQA fact {fact!r}")
    sizes = pd.Series({lang: len(getattr(d, fact)) for lang, d in dataset.by_lang.items() if lang not in exclude})
    return [sizes[language]] if language is not None else _statistics(sizes, stat)


@functools.lru_cache(maxsize=None)
def _lareqa_part(directory: str, part: str, fraction: float | None):
    """Every language of a shipped LAReQA dataset, or its train or held-out part; built once per process."""
    languages = tuple(sorted(p.name.removesuffix(".json.gz") for p in Path(directory).glob("*.json.gz")))
    dataset = load_lareqa(Path(directory).name, directory, languages)
    if part == "all":
        return dataset
    if part not in ("train", "heldout"):
        raise DataError(f"unknown part {part!r}: all, train or heldout")
    return dict(zip(("train", "heldout"), split_by_article(dataset, fraction)))[part]


def _number_or_text(text: str):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return text


# ---- evaluating and rendering ----------------------------------------------------------------------------------


def evaluate(spec: dict, root: Path = PROJECT_ROOT) -> list:
    """The values of one spec: its recipe's, then each arithmetic step in the order written, then its unit."""
    arguments = {k: v for k, v in spec.items() if k not in ARITHMETIC and k not in ("recipe", "unit")}
    if spec.get("recipe") not in RECIPES:
        raise DataError(f"unknown recipe {spec.get('recipe')!r}; known: {sorted(RECIPES)}")
    values = RECIPES[spec["recipe"]](root, **arguments)
    for step in (k for k in spec if k in ARITHMETIC):
        operand = evaluate(spec[step], root) if isinstance(spec[step], dict) else [spec[step]]
        operands = operand if len(operand) == len(values) else operand * len(values)
        values = [ARITHMETIC[step](v, o) for v, o in zip(values, operands)]
    scale = UNITS[spec["unit"]] if "unit" in spec else 1
    return [v * scale if not isinstance(v, str) else v for v in values]


def _minutes_seconds(value: float) -> str:
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds} s"


def _hours_minutes(value: float) -> str:
    hours, minutes = divmod(round(value / 60), 60)
    return f"{hours} h {minutes} min"


NAMED_FORMATS = {"min_s": _minutes_seconds, "h_min": _hours_minutes}


def render(value, spec: str) -> str:
    """One value as the prose writes it: text as it is, a number by a named format or a format spec."""
    if isinstance(value, str):
        return value
    if spec in NAMED_FORMATS:
        return NAMED_FORMATS[spec](value)
    if spec.endswith("d"):
        value = int(round(value))
    return format(value, spec)


def expected_numbers(entry: Entry, root: Path = PROJECT_ROOT) -> tuple[list[str], list[str]]:
    """(numbers as rendered, words as recomputed) of an entry: what its text must hold."""
    values = [v for spec in entry.values for v in evaluate(spec, root)]
    formats = entry.formats if len(entry.formats) == len(values) else entry.formats[:1] * len(values)
    if len(formats) != len(values):
        raise DataError(f"{len(entry.formats)} formats for {len(values)} values")
    numbers = [n for v, f in zip(values, formats) if not isinstance(v, str) for n in numbers_in(render(v, f))]
    return numbers, [v for v in values if isinstance(v, str)]


def numbers_in(text: str) -> list[str]:
    """The numbers of a text as written, the typographic minus read as '-' (so '−21' equals a rendered -21)."""
    return [m.group().replace("−", "-") for m in NUMBER.finditer(text)]


# ---- the documents ---------------------------------------------------------------------------------------------


def prose(text: str) -> str:
    """The document with everything that is not prose blanked out, offsets and line breaks kept."""
    return NOT_PROSE.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)


def text_pattern(text: str) -> re.Pattern:
    """An entry's text as it may be wrapped in the document: any whitespace run matches any other."""
    return re.compile(r"\s+".join(re.escape(word) for word in text.split()))


@dataclass(frozen=True)
class Offender:
    """A number of a document's prose that nothing covers, where it stands."""

    document: str
    line: int
    number: str
    context: str

    def __str__(self) -> str:
        return f"{self.document}:{self.line}: {self.number!r} in ...{self.context}..."


def unexplained(name: str, text: str, registry: Registry) -> list[Offender]:
    """The numbers of a document's prose that no registered text of that document and no allowance covers."""
    body = prose(text)
    covered = [m.span() for e in registry.entries if name in e.docs for m in text_pattern(e.text).finditer(body)]
    covered += [m.span() for a in registry.allowances for m in a.pattern.finditer(body)]
    return [
        Offender(name, body.count("\n", 0, m.start()) + 1, m.group(), _context(body, m.start(), m.end()))
        for m in NUMBER.finditer(body)
        if not any(start <= m.start() and m.end() <= end for start, end in covered)
    ]


def _context(body: str, start: int, end: int) -> str:
    return " ".join(body[max(0, start - 40) : end + 20].split())


def measured_numbers(text: str, allowances: tuple[Allowance, ...] = ()) -> list[str]:
    """The numbers of a registered text that its recipes must give: all but those an allowance covers (the L=8
    in 'the worst, hybrid at L=8, is 0.43 below')."""
    allowed = [m.span() for a in allowances for m in a.pattern.finditer(text)]
    return [m.group().replace("−", "-") for m in NUMBER.finditer(text)
            if not any(start <= m.start() and m.end() <= end for start, end in allowed)]


def entry_problems(entry: Entry, texts: dict[str, str], root: Path = PROJECT_ROOT,
                   allowances: tuple[Allowance, ...] = ()) -> list[str]:
    """Why an entry does not hold: its recipes fail, give other numbers than its text, or a document lacks it."""
    try:
        numbers, words = expected_numbers(entry, root)
    except (DataError, KeyError, IndexError, ValueError, TypeError, OSError) as error:
        return [f"{entry.text!r}: its recipe fails: {type(error).__name__}: {error}"]
    problems = []
    if numbers != measured_numbers(entry.text, allowances) or not all(word in entry.text for word in words):
        problems.append(f"{entry.text!r}: the committed files give {numbers + words}")
    for name in entry.docs:
        if name not in texts:
            problems.append(f"{entry.text!r}: no document {name}")
        elif not text_pattern(entry.text).search(prose(texts[name])):
            problems.append(f"{name}: does not contain {entry.text!r} (in its prose)")
    return problems


def idle_allowances(texts: dict[str, str], registry: Registry) -> list[str]:
    """Allowances that let no number through in any document: stale, so the list stays short and honest."""
    bodies = [prose(t) for t in texts.values()]
    return [
        f"allowance {a.pattern.pattern!r} ({a.why}) covers no number"
        for a in registry.allowances
        if not any(NUMBER.search(m.group()) for body in bodies for m in a.pattern.finditer(body))
    ]
