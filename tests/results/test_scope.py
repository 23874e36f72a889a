"""Trained and untrained languages: which per-query rows each scope keeps, on a frame small enough to count by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.errors import DataError
from bench.results.bootstrap import run_metric
from bench.results.scope import in_scope, trained_cells, trained_languages

LANGS = ("en", "de", "ru")
TRAINED = frozenset({"en", "de"})


def frame() -> pd.DataFrame:
    """One query per cell: mono and multi per language, cross per ordered pair; ap encodes the cell (hand-checkable)."""
    cells = ([("mono", x, x) for x in LANGS] + [("cross", x, y) for x in LANGS for y in LANGS if x != y]
             + [("multi", x, "*") for x in LANGS])  # fmt: skip
    ap = {"en": 0.9, "de": 0.7, "ru": 0.3}
    return pd.DataFrame([{"set": "s", "setting": s, "query_lang": q, "pool_lang": p, "query_id": "q0",
                          "ap": ap[q] if p in ("*", q) else (ap[q] + ap[p]) / 2,
                          "rank_distance": 5.0 if s == "multi" else math.nan} for s, q, p in cells])  # fmt: skip


def test_a_rows_languages_column_is_its_training_languages():
    assert trained_languages("en,de") == TRAINED
    assert trained_languages(" en , de ,") == TRAINED
    assert trained_languages(None) is None and trained_languages("") is None and trained_languages(math.nan) is None


def test_a_cell_is_trained_only_when_every_language_it_names_was_trained():
    data = frame()
    keep = data[trained_cells(data, TRAINED)]
    # mono en, de; cross en->de, de->en only (en->ru names ru); multi en, de (the pool * names no language)
    assert sorted(zip(keep["setting"], keep["query_lang"], keep["pool_lang"])) == [
        ("cross", "de", "en"), ("cross", "en", "de"), ("mono", "de", "de"), ("mono", "en", "en"),
        ("multi", "de", "*"), ("multi", "en", "*")]  # fmt: skip


def test_the_scopes_partition_the_rows_and_give_hand_computed_macro_averages():
    data = frame()
    trained, untrained = in_scope(data, TRAINED, "trained"), in_scope(data, TRAINED, "untrained")
    assert len(trained) + len(untrained) == len(data) and not set(trained.index) & set(untrained.index)
    assert in_scope(data, None, "all") is data
    assert run_metric(trained, "map_mono") == pytest.approx((0.9 + 0.7) / 2)
    assert run_metric(untrained, "map_mono") == pytest.approx(0.3)
    # untrained cross cells: en->ru 0.6, de->ru 0.5, ru->en 0.6, ru->de 0.5
    assert run_metric(untrained, "map_cross") == pytest.approx((0.6 + 0.5 + 0.6 + 0.5) / 4)
    assert run_metric(trained, "map_cross") == pytest.approx(0.8)  # en->de and de->en, both (0.9 + 0.7) / 2
    assert run_metric(untrained, "map_multi") == pytest.approx(0.3)


def test_a_restricted_scope_without_training_languages_is_a_data_error():
    with pytest.raises(DataError, match="languages"):
        in_scope(frame(), None, "untrained")
    with pytest.raises(ValueError, match="scope"):
        in_scope(frame(), TRAINED, "seen")
