"""Cost to a target, uncensored: how many training pairs (and seconds) each arm needs to reach each rung of a
ladder of quality targets fixed before the runs (the claims file's `targets`).

Each run's curve (`curve_summaries`: every summary metric at every curve point) is read for the first
point at or beyond the target. A run that never gets there is censored: it counts as "not reached"
(+inf), never as missing, so the median over an arm's runs is the median of all of them and is itself
"not reached" when half or more never got there. Each cell says k of n reached beside it. Pairs do not
depend on the machine; seconds do, so their median is over the runs not flagged `contended` only (another
process took CPU while a contended run trained) and a cell says over how many.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from bench.results.arms import select_runs
from bench.results.claims import Claims

LOWER_IS_BETTER = ("rank_distance",)
COLUMNS = ["arm", "metric", "target", "n_runs", "k_reached", "median_pairs", "median_train_s", "n_quiet", "reached_pairs"]


def first_reaching(values: list[float | None], target: float, metric: str) -> int | None:
    """Index of the first curve point at or beyond `target` in the metric's better direction."""
    for i, value in enumerate(values):
        if value is not None and (value <= target if metric in LOWER_IS_BETTER else value >= target):
            return i
    return None


def run_costs(row: pd.Series, metric: str, target: float) -> tuple[float, float]:
    """(training pairs, training seconds) to reach `target`; (inf, inf) if the run's curve never does."""
    summaries = json.loads(row["curve_summaries"]) if isinstance(row.get("curve_summaries"), str) else []
    reached = first_reaching([point.get(metric) for point in summaries], target, metric)
    if reached is None:
        return math.inf, math.inf
    return float(row["curve_samples"][reached]), float(row["curve_train_s"][reached])


def censored_median(values: list[float]) -> float:
    """The median with censored values (+inf) counted as the largest: +inf when half or more are censored."""
    if not values:
        return math.nan
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def cost_to_targets(claims: Claims, results: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, metric, target): runs, how many reached it, medians over all runs (censored included)."""
    rows = []
    for arm, selector in claims.arms.items():
        runs = select_runs(results, selector)
        for metric, ladder in claims.targets.items():
            for target in ladder:
                costs = [run_costs(row, metric, target) for _, row in runs.iterrows()]
                pairs = [c[0] for c in costs]
                quiet = [c[1] for c, (_, row) in zip(costs, runs.iterrows()) if not _contended(row)]
                rows.append({"arm": arm, "metric": metric, "target": target, "n_runs": len(costs),
                             "k_reached": int(sum(np.isfinite(pairs))), "median_pairs": censored_median(pairs),
                             "median_train_s": censored_median(quiet), "n_quiet": len(quiet),
                             "reached_pairs": sorted(p for p in pairs if math.isfinite(p))})  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def _contended(row: pd.Series) -> bool:
    value = row.get("contended")
    return bool(value) if value is not None and value == value else False


def cost_cell(row) -> str:
    """"1,600 pairs, 120 s (4/4)", "…, 120 s in 2 quiet runs (4/4)" when some runs were contended, or "not reached
    (1/4)" when the median run never got there."""
    if row.n_runs == 0:
        return "not run"
    reached = f"({row.k_reached}/{row.n_runs})"
    if not math.isfinite(row.median_pairs):
        return f"not reached {reached}"
    if row.n_quiet == 0:
        return f"{row.median_pairs:,.0f} pairs, seconds contended {reached}"
    seconds = "not reached" if not math.isfinite(row.median_train_s) else f"{row.median_train_s:.0f} s"
    quiet = "" if row.n_quiet == row.n_runs else f" in {row.n_quiet} quiet run{'s' if row.n_quiet > 1 else ''}"
    return f"{row.median_pairs:,.0f} pairs, {seconds}{quiet} {reached}"
