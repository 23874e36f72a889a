"""Fits that follow the physics of a training run: what each added language costs.

Memory is a fixed model plus a per-language part (more vocabulary rows, longer and more varied batches),
so the number a user can plan with is the slope of cost = intercept + slope · L: bytes (or seconds) per
added language. Each seed's runs are fitted by least squares on their own; the slope reported is the mean
of the per-seed slopes, and its 95% interval is Student's t over them: mean ± t(0.975, n−1) · sd / √n for
n seeds. Seeds are the independent replicates (a seed fixes the batch plan, so all its points share its
batches), so this interval has its stated coverage with as few as 2 seeds; `tests/results/test_growth.py`
checks 95% by simulation at 3 and 5 seeds. (A percentile bootstrap over 3 seeds is the min–max of their
slopes: about 75%.) With one seed there is no interval and no call, unless the points lie exactly on the
line (a deterministic count, such as parameter bytes: exact).

Calls, each with its stated criterion (CRITERIA, quoted in the reports):
- "flat": the slope's interval holds 0: these runs show no growth, whatever the sign of the estimate;
- "curved": the per-seed quadratic coefficient (cost = a + b·L + c·L²) has a 95% t-interval that excludes 0:
  the line's slope is then an average over the measured L (the curvature and a power law's k are in the table);
- "affine": otherwise, with the slope's interval excluding 0.

Time per step follows the work a step does more than the language count, so step time is also fitted
against its drivers: tokens per step for every strategy, and for masked-LM the vocabulary rows times the
masked tokens of a step (its output layer's logits, `DRIVERS`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from bench.results.fit import FITTED_METRICS, add_derived_metrics, present_metrics, strategy_parameter, t_quantile_975

GROWTH_FILE = "growth_fit.parquet"
STEP_COST_FILE = "step_cost_fit.parquet"
GROUP_KEYS = ["strategy", "source", "tokenizer_policy"]  # one fit per strategy, measured/predicted, vocabulary policy
EXACT = 1e-9  # relative residual under which points lie on the line exactly (deterministic counts, not noise)
ONE_SEED = "one seed: no interval"
CRITERIA = (
    "Each seed's runs are fitted on their own (least squares); the slope is the mean of the per-seed slopes "
    "and its 95% interval Student's t over them (mean ± t·sd/√n, n seeds; coverage checked by simulation). "
    "'flat': the interval holds 0. 'curved': the per-seed quadratic coefficient's 95% t-interval excludes 0 "
    "(the slope is then an average over the measured L, and the curvature is in the fit table). "
    "One seed: no interval and no call."
)
GROWTH_COLUMNS = [
    *GROUP_KEYS, "metric", "intercept", "slope", "slope_ci_low", "slope_ci_high", "interval", "r2_affine",
    "curvature", "curvature_ci_low", "curvature_ci_high", "r2_power", "k", "shape", "n_points", "n_seeds",
    "n_languages_distinct",
]  # fmt: skip
STEP_COST_COLUMNS = [*GROUP_KEYS, "driver", "fixed_s", "s_per_unit", "s_per_unit_ci_low", "s_per_unit_ci_high",
                     "interval", "r2", "driver_min", "driver_max", "n_points"]  # fmt: skip


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its 95% t-interval ('method' says how it was made, or why there is none)."""

    estimate: float
    low: float
    high: float
    method: str

    @classmethod
    def over_seeds(cls, values: list[float], exact: bool = False) -> Interval:
        """mean ± t(0.975, n−1)·sd/√n over per-seed estimates; exact data give a point interval."""
        n = len(values)
        if n == 0:
            return cls(math.nan, math.nan, math.nan, "")
        mean = float(np.mean(values))
        if exact:
            return cls(mean, mean, mean, "exact (no noise)")
        if n == 1:
            return cls(mean, math.nan, math.nan, ONE_SEED)
        half = t_quantile_975(n - 1) * float(np.std(values, ddof=1)) / math.sqrt(n)
        return cls(mean, mean - half, mean + half, f"t over {n} seeds")

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class LineFit:
    """y ≈ intercept + slope · x, the slope's 95% interval over seeds ('interval' says how it was made)."""

    intercept: float
    slope: float
    slope_ci_low: float
    slope_ci_high: float
    interval: str
    r2: float
    n_points: int


@dataclass(frozen=True)
class GrowthFit:
    """cost ≈ intercept + slope · L, the curvature test, the power law's R², and the call the data support."""

    intercept: float
    slope: float
    slope_ci_low: float
    slope_ci_high: float
    interval: str
    r2_affine: float
    curvature: float
    curvature_ci_low: float
    curvature_ci_high: float
    r2_power: float
    k: float
    shape: str  # "flat", "affine", "curved", or "" when the data cannot say (one seed, nothing fitted)
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


def _per_seed(x, y, g, min_distinct: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each seed's points, for the seeds with at least `min_distinct` distinct x."""
    seeds = [(x[g == label], y[g == label]) for label in np.unique(g)]
    return [(sx, sy) for sx, sy in seeds if np.unique(sx).size >= min_distinct]


def _is_exact(y: np.ndarray, predicted: np.ndarray) -> bool:
    return float(np.abs(y - predicted).max()) <= EXACT * max(float(np.abs(y).max()), 1.0)


def fit_line(x, y, groups=None) -> LineFit:
    """Least-squares line per group (seed); the mean slope with its t-interval over groups. NaN where undetermined."""
    x, y, g = _clean(x, y, groups)
    seeds = _per_seed(x, y, g, 2)
    if not seeds:
        return LineFit(math.nan, math.nan, math.nan, math.nan, "", math.nan, int(x.size))
    fits = [_ols(sx, sy) for sx, sy in seeds]
    slopes = [b for _, b in fits]
    # Exact: every seed has a residual degree of freedom, lies on its line, and the seeds agree (a count, not noise).
    exact = (all(np.unique(sx).size >= 3 and _is_exact(sy, a + b * sx) for (sx, sy), (a, b) in zip(seeds, fits))
             and np.ptp(slopes) * float(np.abs(x).max()) <= EXACT * max(float(np.abs(y).max()), 1.0))  # fmt: skip
    slope = Interval.over_seeds(slopes, exact)
    intercept = float(np.mean([a for a, _ in fits]))
    r2 = _r2(y, intercept + slope.estimate * x)
    return LineFit(intercept, slope.estimate, slope.low, slope.high, slope.method, r2, int(x.size))


def curvature(x, y, groups=None) -> Interval:
    """The quadratic coefficient c of cost = a + b·L + c·L², per seed, with its t-interval over seeds."""
    x, y, g = _clean(x, y, groups)
    seeds = _per_seed(x, y, g, 3)
    coefficients, exact = [], True
    for sx, sy in seeds:
        c, b, a = np.polyfit(sx, sy, 2)
        exact = exact and np.unique(sx).size >= 4 and _is_exact(sy, a + b * sx + c * sx**2)
        negligible = abs(c) * float(sx.max()) ** 2 <= EXACT * max(float(np.abs(sy).max()), 1.0)
        coefficients.append(0.0 if negligible else float(c))  # a line's c is rounding noise, not curvature
    exact = exact and bool(coefficients) and np.ptp(coefficients) == 0
    return Interval.over_seeds(coefficients, exact)


def fit_growth(n_languages, cost, seeds=None) -> GrowthFit:
    """cost = intercept + slope · L (slope: cost per added language), and the call the points support."""
    x, y, g = _clean(n_languages, cost, seeds)
    line = fit_line(x, y, g)
    distinct, n_seeds = int(np.unique(x).size), int(np.unique(g).size) if seeds is not None else 1
    if not math.isfinite(line.slope):
        return GrowthFit(*[math.nan] * 4, "", *[math.nan] * 6, "", line.n_points, n_seeds, distinct)
    bend = curvature(x, y, g)
    k, r2_power = _power_law(x, y)
    slope = Interval(line.slope, line.slope_ci_low, line.slope_ci_high, line.interval)
    if not math.isfinite(slope.low):
        shape = ""  # one seed: no call
    elif bend.excludes_zero:
        shape = "curved"
    elif not slope.excludes_zero:
        shape = "flat"
    else:
        shape = "affine"
    return GrowthFit(line.intercept, line.slope, line.slope_ci_low, line.slope_ci_high, line.interval, line.r2,
                     bend.estimate, bend.low, bend.high, r2_power, k, shape, line.n_points, n_seeds, distinct)  # fmt: skip


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


def growth_fits(runs: pd.DataFrame, metrics=FITTED_METRICS) -> pd.DataFrame:
    """One GrowthFit per (strategy, source, vocabulary policy, metric) over usable runs (as from `usable_runs`)."""
    rows = []
    for metric in present_metrics(runs, metrics):
        for keys, group in _groups(runs):
            if group[metric].notna().any():
                fit = fit_growth(group["n_languages"], group[metric], group["seed"])
                rows.append({**keys, "metric": metric, **asdict(fit)})
    return pd.DataFrame(rows, columns=GROWTH_COLUMNS)


def masked_logit_work(runs: pd.DataFrame) -> pd.Series:
    """Vocabulary rows × masked tokens per step: the masked-LM output layer's work, which grows with the vocabulary
    and not with padding. Masked tokens as the row counted them, else expected (mask_prob × real tokens, rows written
    before the count existed). NaN for rows without masking."""
    params = runs.get("strategy_params", pd.Series(index=runs.index, dtype=object))
    probability = pd.to_numeric(params.map(lambda text: strategy_parameter(text, "mask_prob")), errors="coerce")
    rows = pd.to_numeric(runs.get("embedding_rows", runs.get("vocab_size")), errors="coerce")
    real_tokens = runs["tokens_per_step"] * (1 - pd.to_numeric(runs.get("padding_fraction"), errors="coerce"))
    expected = probability * real_tokens
    counted = pd.to_numeric(runs.get("masked_tokens_per_step", pd.Series(index=runs.index, dtype=float)), errors="coerce")
    return rows * counted.where(counted.notna() & probability.notna(), expected)


DRIVERS = {  # what a step's time is fitted against: (label, column builder)
    "tokens per step": lambda runs: runs["tokens_per_step"],
    "vocabulary rows × masked tokens per step": masked_logit_work,
}


def step_cost_fits(runs: pd.DataFrame) -> pd.DataFrame:
    """Median step time against each driver, per (strategy, source, vocabulary policy): the fixed cost of a step
    (intercept) and seconds per unit of the driver (slope, with its t-interval over seeds)."""
    if runs.empty or "step_time_p50_s" not in runs:
        return pd.DataFrame(columns=STEP_COST_COLUMNS)
    if "tokens_per_step" not in runs:  # usable_runs has derived it already; a raw table has not
        runs = add_derived_metrics(runs)
    rows = []
    for keys, group in _groups(runs):
        for driver, build in DRIVERS.items():
            values = build(group)
            if values.notna().sum() == 0:
                continue
            line = fit_line(values, group["step_time_p50_s"], group["seed"])
            rows.append({**keys, "driver": driver, "fixed_s": line.intercept, "s_per_unit": line.slope,
                         "s_per_unit_ci_low": line.slope_ci_low, "s_per_unit_ci_high": line.slope_ci_high,
                         "interval": line.interval, "r2": line.r2, "driver_min": values.min(),
                         "driver_max": values.max(), "n_points": line.n_points})  # fmt: skip
    return pd.DataFrame(rows, columns=STEP_COST_COLUMNS)
