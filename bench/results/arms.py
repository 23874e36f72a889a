"""The runs of each arm of a claims file: rows of results.parquet picked by a selector, with their per-query frames.

An arm is a selector (results columns, else strategy parameters) over the ok rows. Each selected run brings
its seed, its per-query frame (per_query/<run_id>.parquet), its number of training languages L and which
languages those were, so a claim can be judged at one L and on trained or untrained languages only
(bench.results.scope).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from bench.errors import ConfigError, DataError
from bench.results.bootstrap import check_per_query
from bench.results.fit import strategy_parameter
from bench.results.scope import in_scope, trained_languages
from bench.results.store import PER_QUERY_DIR, load_results


@dataclass(frozen=True)
class ArmRuns:
    """One arm's ok runs that have per-query results, in seed order: their seeds and per-query frames, and
    (where recorded) each run's number of training languages and which languages those were."""

    seeds: tuple[int, ...] = ()
    frames: tuple[pd.DataFrame, ...] = ()
    n_languages: tuple[int | None, ...] = ()  # left empty: not recorded for any run
    trained: tuple[frozenset[str] | None, ...] = ()

    def __post_init__(self) -> None:
        for name in ("n_languages", "trained"):  # one entry per run, so every filter below keeps them aligned
            if not getattr(self, name):
                object.__setattr__(self, name, (None,) * len(self.seeds))

    def _runs(self) -> list[tuple]:
        return list(zip(*(getattr(self, f.name) for f in fields(self)))) if self.seeds else []

    @classmethod
    def _of(cls, runs: list[tuple]) -> ArmRuns:
        return cls(*(tuple(column) for column in zip(*runs))) if runs else cls()

    def on_set(self, name: str) -> ArmRuns:
        """The runs evaluated on set `name`, their frames cut to its rows."""
        cut = [(s, frame[frame["set"] == name], n, t) for s, frame, n, t in self._runs()]
        return self._of([run for run in cut if len(run[1])])

    def restrict(self, seeds: list[int]) -> ArmRuns:
        """The runs of `seeds`, in that order (what pairs two arms seed by seed)."""
        index = {run[0]: run for run in self._runs()}
        return self._of([index[seed] for seed in seeds])

    def at(self, n_languages: int | None) -> ArmRuns:
        """The runs trained on `n_languages` languages; every run for None (a claim not scoped to one L)."""
        if n_languages is None:
            return self
        return self._of([run for run in self._runs() if run[2] == n_languages])

    def scoped(self, scope: str) -> ArmRuns:
        """The runs with their frames cut to the cells of `scope` (bench.results.scope); runs left with no row
        in it (untrained languages at the largest L) are dropped."""
        if scope == "all":
            return self
        cut = [(s, in_scope(frame, t, scope), n, t) for s, frame, n, t in self._runs()]
        return self._of([run for run in cut if len(run[1])])


def matches(values: pd.Series, wanted) -> pd.Series:
    """Which values equal a selector's value: None matches missing, numbers match within float noise."""
    if wanted is None:
        return values.isna()
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
        return pd.Series(np.isclose(numbers, float(wanted), rtol=0, atol=1e-9), index=values.index)
    return values.astype(str) == str(wanted)


def select_runs(results: pd.DataFrame, selector: Mapping) -> pd.DataFrame:
    """The ok rows that match every key of the selector: a results column, else a strategy parameter."""
    rows = results[results["status"] == "ok"]
    for key, wanted in selector.items():
        if key in rows.columns:
            values = rows[key]
        else:
            params = rows.get("strategy_params", pd.Series(None, index=rows.index, dtype=object))
            values = params.map(lambda text: strategy_parameter(text, key))
        rows = rows[matches(values, wanted).to_numpy()]
    return rows


def row_languages(row) -> tuple[int | None, frozenset[str] | None]:
    """A results row's L and training languages (None where the row does not record them)."""
    count = getattr(row, "n_languages", None)
    known = count is not None and not (isinstance(count, float) and math.isnan(count))
    return (int(count) if known else None), trained_languages(getattr(row, "languages", None))


def load_arm_runs(selectors: Mapping[str, Mapping], results_dir: Path, by_languages: bool) -> dict[str, ArmRuns]:
    """Every arm's ok runs with their per-query frames; runs without a per-query file are left out, with a warning.

    An arm holds one run per seed, or with `by_languages` one per (seed, L): a second would make the pairing
    by seed ambiguous, so it is an error naming the arm."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ConfigError(f"results_dir: {results_dir} does not exist")
    results = load_results(results_dir)
    key = ["seed", "n_languages"] if by_languages else ["seed"]
    arms = {}
    for label, selector in selectors.items():
        rows = select_runs(results, selector)
        if rows["seed"].isna().any() or rows.duplicated(subset=[k for k in key if k in rows]).any():
            per = " and L" if by_languages else ""
            raise ConfigError(f"arms.{label}: selects runs with a missing or repeated seed{per}; narrow the selector")
        runs = []
        for row in rows.sort_values("seed").itertuples():
            path = results_dir / PER_QUERY_DIR / f"{row.run_id}.parquet"
            if not path.is_file():
                warnings.warn(f"arm {label}: ok run {row.run_id} has no {path}; left out", stacklevel=2)
                continue
            try:
                frame = pd.read_parquet(path)
            except Exception as exc:
                raise DataError(f"{path} is unreadable ({type(exc).__name__})") from None
            runs.append((int(row.seed), check_per_query(frame, str(path)), *row_languages(row)))
        arms[label] = ArmRuns._of(runs)
    return arms
