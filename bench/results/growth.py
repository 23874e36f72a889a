"""Fits that follow the physics of a training run: what each added language costs.

Memory is a fixed model plus a per-language part (more vocabulary rows, longer and more varied batches),
so the number a user can plan with is the slope of cost = intercept + slope · L: bytes (or seconds) per
added language. It is fitted by least squares over every run (all seeds), with a 95% interval from a
bootstrap over seeds (whole seeds resampled, so seed-to-seed spread widens it) when there are at least 3
seeds, else Student's t over the points. A slope whose interval holds 0 is "flat": the evidence does not
show growth, whatever the sign of the estimate. The power law of `fit.py` is compared on the same points
(both have two parameters; R² in the original units) and named the shape only where it fits clearly
better (`POWER_MARGIN`).

Time per step follows the tokens a step processes (padding included) more than the language count, so
step time is also fitted against tokens per step: seconds per token, and the fixed cost of a step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from bench.results.fit import FITTED_METRICS, add_derived_metrics, present_metrics, t_quantile_975

GROWTH_FILE = "growth_fit.parquet"
STEP_COST_FILE = "step_cost_fit.parquet"
GROUP_KEYS = ["strategy", "source", "tokenizer_policy"]  # one fit per strategy, measured/predicted, vocabulary policy
POWER_MARGIN = 0.02  # the power law must raise R² by this much to be called the shape
BOOTSTRAP_SEEDS_MIN = 3  # fewer seeds than this: a t interval over the points instead of a seed bootstrap
GROWTH_COLUMNS = [
    *GROUP_KEYS, "metric", "intercept", "slope", "slope_ci_low", "slope_ci_high", "interval", "r2_affine",
    "r2_power", "k", "shape", "n_points", "n_seeds", "n_languages_distinct",
]  # fmt: skip
STEP_COST_COLUMNS = [*GROUP_KEYS, "fixed_s", "s_per_token", "s_per_token_ci_low", "s_per_token_ci_high",
                     "r2", "tokens_per_step_min", "tokens_per_step_max", "n_points"]  # fmt: skip


@dataclass(frozen=True)
class LineFit:
    """y ≈ intercept + slope · x over the points, with a 95% interval on the slope ('interval' says how)."""

    intercept: float
    slope: float
    slope_ci_low: float
    slope_ci_high: float
    interval: str  # "seed bootstrap", "t", or "" when the data cannot say
    r2: float
    n_points: int


@dataclass(frozen=True)
class GrowthFit:
    """cost ≈ intercept + slope · L, the power law's R² on the same points, and which shape the data show."""

    intercept: float
    slope: float
    slope_ci_low: float
    slope_ci_high: float
    interval: str
    r2_affine: float
    r2_power: float
    k: float
    shape: str  # "flat", "affine", "power", or "" when nothing could be fitted
    n_points: int
    n_seeds: int
    n_languages_distinct: int


def _clean(x, y, groups=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = pd.to_numeric(pd.Series(x), errors="coerce").astype(float).to_numpy()
    y = pd.to_numeric(pd.Series(y), errors="coerce").astype(float).to_numpy()
    g = np.zeros(x.size) if groups is None else pd.Series(groups).to_numpy()
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep], g[keep]


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    x_mean = x.mean()
    slope = float(((x - x_mean) * (y - y.mean())).sum() / ((x - x_mean) ** 2).sum())
    return float(y.mean() - slope * x_mean), slope


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - predicted) ** 2).sum()) / total if total > 0 else math.nan


def fit_line(x, y, groups=None, n_boot: int = 2000, rng_seed: int = 0) -> LineFit:
    """Least-squares line through (x, y); the slope's 95% interval from resampling whole groups (seeds)
    when there are at least BOOTSTRAP_SEEDS_MIN of them, else from Student's t. NaN where undetermined."""
    x, y, g = _clean(x, y, groups)
    if np.unique(x).size < 2:
        return LineFit(math.nan, math.nan, math.nan, math.nan, "", math.nan, int(x.size))
    intercept, slope = _ols(x, y)
    r2 = _r2(y, intercept + slope * x)
    labels = np.unique(g)
    if labels.size >= BOOTSTRAP_SEEDS_MIN:
        low, high = _seed_bootstrap(x, y, g, labels, n_boot, rng_seed)
        return LineFit(intercept, slope, low, high, "seed bootstrap", r2, int(x.size))
    dof = x.size - 2
    if dof < 1:
        return LineFit(intercept, slope, math.nan, math.nan, "", r2, int(x.size))
    residual = float(((y - intercept - slope * x) ** 2).sum()) / dof
    half = t_quantile_975(dof) * math.sqrt(residual / float(((x - x.mean()) ** 2).sum()))
    return LineFit(intercept, slope, slope - half, slope + half, "t", r2, int(x.size))


def _seed_bootstrap(x, y, g, labels, n_boot: int, rng_seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(rng_seed)
    members = [np.flatnonzero(g == label) for label in labels]
    slopes = []
    for _ in range(n_boot):
        rows = np.concatenate([members[i] for i in rng.integers(0, labels.size, labels.size)])
        if np.unique(x[rows]).size >= 2:
            slopes.append(_ols(x[rows], y[rows])[1])
    low, high = np.quantile(slopes, [0.025, 0.975])
    return float(low), float(high)


def fit_growth(n_languages, cost, seeds=None, n_boot: int = 2000, rng_seed: int = 0) -> GrowthFit:
    """cost = intercept + slope · L (slope: cost per added language), and the shape the points show."""
    x, y, g = _clean(n_languages, cost, seeds)
    line = fit_line(x, y, g, n_boot, rng_seed)
    distinct, n_seeds = int(np.unique(x).size), int(np.unique(g).size) if seeds is not None else 0
    if not math.isfinite(line.slope):
        return GrowthFit(*[math.nan] * 4, "", math.nan, math.nan, math.nan, "", line.n_points, n_seeds, distinct)
    k, r2_power = _power_law(x, y)
    if not (line.slope_ci_low > 0 or line.slope_ci_high < 0):  # an interval holding 0 (or none): no growth shown
        shape = "flat"
    elif math.isfinite(r2_power) and r2_power > line.r2 + POWER_MARGIN:
        shape = "power"
    else:
        shape = "affine"
    return GrowthFit(line.intercept, line.slope, line.slope_ci_low, line.slope_ci_high, line.interval, line.r2,
                     r2_power, k, shape, line.n_points, n_seeds, distinct)  # fmt: skip


def _power_law(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(k, R² in the original units) of cost = a · L^k fitted in log-log space; NaN where logs are undefined."""
    if (x <= 0).any() or (y <= 0).any():
        return math.nan, math.nan
    log_a, k = _ols(np.log(x), np.log(y))
    return k, _r2(y, math.exp(log_a) * x**k)


def _groups(runs: pd.DataFrame):
    keyed = runs.assign(**{key: runs[key].fillna("") for key in GROUP_KEYS if key in runs})
    keys = [key for key in GROUP_KEYS if key in keyed]
    for values, group in keyed.groupby(keys, sort=True):
        yield dict(zip(keys, values if isinstance(values, tuple) else (values,))), group


def growth_fits(runs: pd.DataFrame, metrics=FITTED_METRICS, n_boot: int = 2000) -> pd.DataFrame:
    """One GrowthFit per (strategy, source, vocabulary policy, metric) over usable runs (as from `usable_runs`)."""
    rows = []
    for metric in present_metrics(runs, metrics):
        for keys, group in _groups(runs):
            if group[metric].notna().any():
                fit = fit_growth(group["n_languages"], group[metric], group["seed"], n_boot)
                rows.append({**keys, "metric": metric, **asdict(fit)})
    return pd.DataFrame(rows, columns=GROWTH_COLUMNS)


def step_cost_fits(runs: pd.DataFrame, n_boot: int = 2000) -> pd.DataFrame:
    """Median step time against tokens per step, per (strategy, source, vocabulary policy): the fixed cost of a
    step (intercept) and seconds per token (slope, with its interval over seeds)."""
    if runs.empty or "step_time_p50_s" not in runs:
        return pd.DataFrame(columns=STEP_COST_COLUMNS)
    if "tokens_per_step" not in runs:  # usable_runs has derived it already; a raw table has not
        runs = add_derived_metrics(runs)
    rows = []
    for keys, group in _groups(runs):
        tokens = group["tokens_per_step"].dropna()
        if tokens.empty:
            continue
        line = fit_line(group["tokens_per_step"], group["step_time_p50_s"], group["seed"], n_boot)
        rows.append({**keys, "fixed_s": line.intercept, "s_per_token": line.slope, "s_per_token_ci_low": line.slope_ci_low,
                     "s_per_token_ci_high": line.slope_ci_high, "r2": line.r2, "tokens_per_step_min": tokens.min(),
                     "tokens_per_step_max": tokens.max(), "n_points": line.n_points})  # fmt: skip
    return pd.DataFrame(rows, columns=STEP_COST_COLUMNS)
