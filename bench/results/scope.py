"""Trained and untrained languages: which of a run's per-query rows a metric restricted to either reads.

A run trains on its row's `languages` (comma-separated codes) and is evaluated on every language of each
set, so at L < 11 some evaluated languages were never trained on. A cell of a metric (a query language;
for map_cross, the ordered pair of query and pool language) is *trained* when every language it names was
trained on, and *untrained* otherwise; the multilingual pool (`*`, every language at once) names none.
The two scopes partition the cells, so a metric's trained and untrained values are computed from disjoint
rows, each the harness's macro average over its own cells (bench.results.bootstrap).
"""

from __future__ import annotations

import pandas as pd

from bench.errors import DataError

SCOPES = ("all", "trained", "untrained")
RESTRICTED = SCOPES[1:]
WHOLE_POOL = "*"  # pool_lang of the multilingual setting (bench.evaluation.retrieval)


def trained_languages(text: object) -> frozenset[str] | None:
    """The training languages of a results row's `languages` ("en,de" -> {en, de}); None where not recorded."""
    if not isinstance(text, str) or not text.strip():
        return None
    return frozenset(code.strip() for code in text.split(",") if code.strip())


def trained_cells(frame: pd.DataFrame, trained: frozenset[str]) -> pd.Series:
    """Per row of a per-query frame: is its cell trained (every language it names in `trained`)?"""
    pool = frame["pool_lang"]
    return frame["query_lang"].isin(trained) & (pool.isin(trained) | (pool == WHOLE_POOL))


def in_scope(frame: pd.DataFrame, trained: frozenset[str] | None, scope: str) -> pd.DataFrame:
    """The rows of `frame` whose cells are in `scope`; the frame itself for `all`."""
    if scope == "all":
        return frame
    if scope not in RESTRICTED:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if trained is None:
        raise DataError(f"scope {scope} needs each run's training languages (results.parquet `languages`), "
                        "and a run has none recorded")  # fmt: skip
    mask = trained_cells(frame, trained)
    return frame[mask if scope == "trained" else ~mask]
