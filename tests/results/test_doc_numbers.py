"""No hand-typed number without a check: every number in the prose of README.md and docs/*.md is registered in
docs/numbers.yaml and recomputed from its committed file, generated, or allowed as a non-measurement."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench import PROJECT_ROOT
from bench.results.doc_numbers import (
    NUMBER,
    Entry,
    Registry,
    documents,
    entry_problems,
    evaluate,
    idle_allowances,
    load_registry,
    measured_numbers,
    numbers_in,
    prose,
    render,
    text_pattern,
    unexplained,
)

REGISTRY = load_registry()


def texts_of(root=PROJECT_ROOT) -> dict[str, str]:
    return {path.relative_to(root).as_posix(): path.read_text() for path in documents(root)}


TEXTS = texts_of()


def problems(texts: dict[str, str], registry: Registry = REGISTRY) -> list[str]:
    """Everything wrong, at once: entries that fail, numbers nothing covers, allowances that cover nothing."""
    found = [p for entry in registry.entries for p in entry_problems(entry, texts, allowances=registry.allowances)]
    found += [str(o) for name, text in texts.items() for o in unexplained(name, text, registry)]
    return found + idle_allowances(texts, registry)


def test_every_registered_number_is_recomputed_from_its_file_and_stands_in_its_document():
    failing = [p for entry in REGISTRY.entries for p in entry_problems(entry, TEXTS, allowances=REGISTRY.allowances)]
    assert not failing, "registered numbers that disagree with their files (docs/numbers.yaml):\n" + "\n".join(failing)


def test_every_number_in_the_prose_is_registered_generated_or_allowed():
    offenders = [str(o) for name, text in TEXTS.items() for o in unexplained(name, text, REGISTRY)]
    assert not offenders, (
        f"{len(offenders)} numbers in the prose with no source: register each in docs/numbers.yaml with the recipe "
        "that recomputes it, generate it, or drop it:\n" + "\n".join(offenders))


def test_every_allowance_lets_some_number_through():
    assert not idle_allowances(TEXTS, REGISTRY)


def test_a_changed_digit_in_a_copy_of_a_document_is_caught(tmp_path):
    # The language tax's range, once hand-typed as 0.97–1.14×, comes from time_by_language.csv.
    (tmp_path / "docs").mkdir()
    for name, text in TEXTS.items():
        (tmp_path / name).write_text(text)
    copy = tmp_path / "docs" / "experiments.md"
    assert "0.96–1.20×" in copy.read_text()
    copy.write_text(copy.read_text().replace("0.96–1.20×", "0.96–1.21×"))
    found = problems(texts_of(tmp_path))
    assert any("does not contain" in p and "0.96–1.20×" in p for p in found)
    assert any("'1.21'" in p and "docs/experiments.md" in p for p in found)  # and the changed number is unexplained


def _plant(text: str, entry: Entry) -> tuple[str, int, str]:
    """`text` with the last digit of the entry's first measured number changed where the entry first stands:
    (the planted text, the line, the planted number)."""
    match = text_pattern(entry.text).search(prose(text))
    first = measured_numbers(entry.text, REGISTRY.allowances)[0]
    number = next(m for m in NUMBER.finditer(match.group()) if m.group().replace("−", "-") == first)
    end = match.start() + number.end()
    planted = text[: end - 1] + ("1" if text[end - 1] == "0" else "0") + text[end:]
    return planted, text.count("\n", 0, end) + 1, number.group()[:-1] + planted[end - 1]


@pytest.mark.parametrize("index", range(len(REGISTRY.entries)), ids=lambda i: REGISTRY.entries[i].text[:40])
def test_changing_any_registered_number_fails_the_check(index):
    """Every entry is live: a digit changed in its text either breaks the entry (its only occurrence is gone) or
    leaves the changed number covered by nothing."""
    entry = REGISTRY.entries[index]
    name = entry.docs[0]
    planted, line, number = _plant(TEXTS[name], entry)
    broken = entry_problems(entry, {**TEXTS, name: planted}, allowances=REGISTRY.allowances)
    loose = [o for o in unexplained(name, planted, REGISTRY) if (o.line, o.number) == (line, number)]
    assert broken or loose, f"changing {entry.text!r} to hold {number} went unnoticed"


# ---- the scanner ---------------------------------------------------------------------------------------------


def test_numbers_are_read_as_prose_writes_them():
    assert numbers_in("L=2, 1.81×, 2,665 and −21; 0.96–1.20× (+0.3 MiB), 6 min 53 s") == [
        "2", "1.81", "2,665", "-21", "0.96", "1.20", "+0.3", "6", "53"]
    assert numbers_in("fp32 x000 p90 mE5-small Apache-2.0 2e-5 H1 bf16 Q4_0 AVX-512") == []


def test_code_generated_blocks_and_link_targets_are_not_prose():
    text = ("a 1\n```bash\nrun 2\n```\n`3` [x](docs/4.md) <!-- 5 -->\n"
            "<!-- generated:t -->\n6\n<!-- /generated:t -->\nb 7\n")
    assert numbers_in(prose(text)) == ["1", "7"]
    assert prose(text).count("\n") == text.count("\n")  # line numbers survive


def test_an_unregistered_number_is_reported_with_its_line_and_a_registered_one_is_not():
    entry = Entry(("doc.md",), "1.20×", ({"recipe": "conf", "file": "x", "key": "y"},), (".2f",))
    text = "intro\nRussian 1.20×, Greek\n1.16× here\n"
    [offender] = unexplained("doc.md", text, Registry((entry,), ()))
    assert (offender.line, offender.number) == (3, "1.16")
    # an entry covers its own documents only
    assert [o.number for o in unexplained("other.md", text, Registry((entry,), ()))] == ["1.20", "1.16"]


def test_a_registered_text_may_wrap_across_lines():
    assert text_pattern("Russian 1.20× and").search("Russian\n  1.20× and")


def test_an_allowance_that_covers_no_number_is_reported():
    registry = load_registry()
    [year] = [a for a in registry.allowances if "et al" in a.pattern.pattern]
    assert idle_allowances({"d.md": "Roy et al. 2020"}, Registry((), (year,))) == []
    assert "covers no number" in idle_allowances({"d.md": "Roy et al. (2020)"}, Registry((), (year,)))[0]


def test_an_allowance_covers_only_what_it_matches():
    registry = load_registry()
    [year] = [a for a in registry.allowances if "et al" in a.pattern.pattern]
    only = Registry((), (year,))
    assert unexplained("d.md", "Roy et al. 2020", only) == []
    assert [o.number for o in unexplained("d.md", "in 2020 we", only)] == ["2020"]


# ---- recipes ---------------------------------------------------------------------------------------------------


def test_table_selects_rows_and_groups(tmp_path):
    pd.DataFrame({"seed": [0, 0, 1, 1], "kind": ["a", "b", "a", "a"], "wall_s": [1.0, 2.0, 4.0, 8.0]}).to_parquet(
        tmp_path / "r.parquet")
    spec = {"recipe": "table", "file": "r.parquet", "column": "wall_s"}
    assert evaluate({**spec, "stat": ["min", "max", "median"]}, tmp_path) == [1.0, 8.0, 3.0]
    assert evaluate({**spec, "where": {"kind": "a"}, "stat": "sum"}, tmp_path) == [13.0]
    assert evaluate({**spec, "where_not": {"kind": "a"}}, tmp_path) == [2.0]
    assert evaluate({**spec, "by": "seed", "stat": ["min", "max"]}, tmp_path) == [3.0, 12.0]  # per-seed sums
    assert evaluate({**spec, "stat": "max", "over": {**spec, "stat": "median"}, "minus": 1, "unit": "ms"},
                    tmp_path) == [pytest.approx(5000 / 3)]  # (8 / 3 - 1) s, steps in the order written
    failing = Entry(("d.md",), "8", ({**spec, "where": {"kind": "a"}},), ("g",))
    assert "exactly one row" in entry_problems(failing, {"d.md": "8"}, tmp_path)[0]  # 'first' of three rows


def test_json_conf_text_and_ln_recipes(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"t": {"median": 1.81}}))
    (tmp_path / "s.jsonl").write_text('{"cpu": "EPYC", "c": {"g": 191.2}}\n{"c": {"g": 199.6}}\n{"end": 1}\n')
    (tmp_path / "c.yaml").write_text("sweep: {languages: '2,4,8,11'}\nbatch: 32\ngrids: [{a: 1}, {a: 0.5}]\n")
    (tmp_path / "o.txt").write_text("harness / bare : median 1.0318 (IQR 0.9338-1.1474)\n")
    assert evaluate({"recipe": "json", "file": "a.json", "path": ["t", "median"]}, tmp_path) == [1.81]
    assert evaluate({"recipe": "jsonl", "file": "s.jsonl", "path": ["c", "g"], "stat": ["min", "max"]},
                    tmp_path) == [191.2, 199.6]
    assert evaluate({"recipe": "jsonl", "file": "s.jsonl", "path": ["cpu"]}, tmp_path) == ["EPYC"]
    assert evaluate({"recipe": "conf", "file": "c.yaml", "key": "sweep.languages"}, tmp_path) == [2, 4, 8, 11]
    assert evaluate({"recipe": "conf", "file": "c.yaml", "key": "grids.1.a"}, tmp_path) == [0.5]
    assert evaluate({"recipe": "count", "file": "c.yaml", "key": "grids"}, tmp_path) == [2]
    assert evaluate({"recipe": "text", "file": "o.txt", "pattern": r"median ([\d.]+) \(IQR ([\d.]+)-([\d.]+)"},
                    tmp_path) == [1.0318, 0.9338, 1.1474]
    [log] = evaluate({"recipe": "ln", "file": "c.yaml", "key": "batch"}, tmp_path)
    assert render(log, ".3f") == "3.466"


def test_lareqa_facts_come_from_the_shipped_data():
    spec = {"recipe": "lareqa", "file": "data/lareqa/xquad-r"}
    assert evaluate({**spec, "fact": "languages"}) == [11]
    per_language = evaluate({**spec, "fact": "questions", "stat": ["min", "max"]})
    assert per_language[0] == per_language[1]  # parallel: every language has the same questions
    split = {**spec, "conf": "conf/data/xquad-r.yaml"}
    parts = [evaluate({**split, "fact": "questions", "part": part})[0] for part in ("train", "heldout")]
    assert sum(parts) == evaluate({**spec, "fact": "questions"})[0]


def test_render_writes_what_prose_writes():
    assert [render(v, f) for v, f in [(413.36, "min_s"), (6060, "h_min"), (2665.0, ",d"), (0.2318, ".0%"),
                                       (-21.4, "+.0f"), ("AMD EPYC", "g")]] == [
        "6 min 53 s", "1 h 41 min", "2,665", "23%", "-21", "AMD EPYC"]


def test_a_recipe_that_gives_another_number_fails(tmp_path):
    (tmp_path / "c.yaml").write_text("batch: 32\n")
    entry = Entry(("d.md",), "batch 33", ({"recipe": "conf", "file": "c.yaml", "key": "batch"},), ("d",))
    [problem] = entry_problems(entry, {"d.md": "at batch 33 here"}, tmp_path)
    assert "give ['32']" in problem
