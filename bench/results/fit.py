"""Statistics of a results table: which rows count, derived metrics, seed summaries, Student's t.

The question the benchmark answers is "how does cost grow with the number of training languages L?";
bench.results.growth answers it with what one more language costs (cost = intercept + slope · L), on the
rows and metrics this module selects and derives.

Measured runs (status "ok") and predicted runs (status "predicted", memory only) are kept
apart everywhere through a `source` column: a prediction and a measurement of the same
strategy are two different curves, never pooled into one fit.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from bench.results.schema import metrics_where

MEASURED, PREDICTED = "measured", "predicted"

FITTED_METRICS = tuple(m.column for m in metrics_where(fitted=True))  # the catalogue's cost metrics

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (standard table values);
# beyond 30 the Cornish-Fisher expansion below is accurate to better than 1e-4.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959963984540054


def t_quantile_975(dof: int) -> float:
    """The 97.5% quantile of Student's t with `dof` degrees of freedom (NaN when dof < 1)."""
    if dof < 1:
        return math.nan
    if dof <= len(_T975):
        return _T975[dof - 1]
    z, v = _Z975, float(dof)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    )


def strategy_parameter(text: object, key: str):
    """One parameter from a row's strategy_params JSON (None where the row has none)."""
    params = json.loads(text) if isinstance(text, str) and text else None
    return params.get(key) if isinstance(params, dict) else None


def add_derived_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """Add what a row implies: `train_s_per_example` = train_s / (steps · batch_size), the time of each phase
    per measured step (`forward_s_per_step`, ...: the phase's total over the measured window / its steps) and
    `tokens_per_step` (padding included: tokens_per_s · measured_s / measured_steps).

    Per-example and per-step figures are comparable across budgets: with budget "per_language" the number
    of steps grows with L, so raw train_s mixes "more work" with "slower work".
    """
    out = df.copy()
    examples = _numeric(out, "steps") * _numeric(out, "batch_size")
    out["train_s_per_example"] = _numeric(out, "train_s") / examples.where(examples > 0)
    measured = _numeric(out, "measured_steps").where(lambda steps: steps > 0)
    for phase in ("forward", "backward", "optimizer"):
        out[f"{phase}_s_per_step"] = _numeric(out, f"phase_{phase}_s") / measured
    out["tokens_per_step"] = _numeric(out, "tokens_per_s") * _numeric(out, "measured_s") / measured
    return out


def usable_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Runs that belong on a curve (measured "ok" and "predicted"), with `source` and derived metrics."""
    status = df["status"] if "status" in df else pd.Series("ok", index=df.index)
    predicted = df["predicted"].fillna(False).astype(bool) if "predicted" in df else False
    is_predicted = (status == "predicted") | ((status == "ok") & predicted)
    is_measured = (status == "ok") & ~is_predicted
    keep = (is_measured | is_predicted) & df["n_languages"].notna()  # a run without L has no place on a curve
    out = df[keep].copy()
    out["n_languages"] = out["n_languages"].astype("int64")  # nulls elsewhere in the table made it float
    out["source"] = np.where(is_predicted[keep], PREDICTED, MEASURED)
    return add_derived_metrics(out)


def failed_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Runs that produced no usable numbers (failed, oom, interrupted): excluded from curves, but reported."""
    if "status" not in df:
        return df.iloc[0:0]
    return df[~df["status"].isin(["ok", "predicted"])]


def present_metrics(df: pd.DataFrame, metrics) -> list[str]:
    """The metrics that are columns of `df` and not entirely null (e.g. no eval columns in predict mode)."""
    return [m for m in metrics if m in df and df[m].notna().any()]


def seed_summary(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (strategy, source, n_languages): median, min, max, quartiles and count of `metric` over seeds."""
    keys = ["strategy", "source", "n_languages"]
    values = runs[keys + [metric]].dropna(subset=[metric])
    values = values.assign(**{metric: pd.to_numeric(values[metric], errors="coerce")}).dropna(subset=[metric])
    grouped = values.groupby(keys, sort=True)[metric]
    summary = grouped.agg(median="median", min="min", max="max", n="count")
    summary["q25"] = grouped.quantile(0.25)
    summary["q75"] = grouped.quantile(0.75)
    return summary.reset_index()


def _numeric(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[column], errors="coerce").astype(float)
