"""The lines a sweep ends with: what one more training language costs in its results, per strategy.

Written from the fits the report, the figures and the answer use (bench.results.growth), never typed: the slope of
time per step and of peak tensor memory, each with its 95% interval, and how the interval was made.
"""

from __future__ import annotations

import pandas as pd

from bench.results.figures import strategy_styles
from bench.results.fit import PREDICTED
from bench.results.growth import GROWTH_FILE, growth_fits
from bench.results.numbers import per_language_text
from bench.results.schema import METRIC

SUMMARY_METRICS = (("step_time_p50_s", "time per step"), ("peak_tensor_bytes", "peak tensor memory"))


def cost_lines(runs: pd.DataFrame) -> list[str]:
    """A heading and one line per strategy (and source, and vocabulary policy where a strategy has several): what
    one more language costs in time per step and peak tensor memory. [] when nothing could be fitted."""
    growth = growth_fits(runs, [column for column, _ in SUMMARY_METRICS])
    growth = growth[growth["slope"].notna()].assign(tokenizer_policy=lambda g: g["tokenizer_policy"].fillna(""))
    if growth.empty:
        return []
    order = list(strategy_styles(growth["strategy"].unique()))
    several = growth.groupby(["strategy", "source"])["tokenizer_policy"].nunique() > 1
    curves = sorted(growth.groupby(["strategy", "source", "tokenizer_policy"]),
                    key=lambda item: (order.index(item[0][0]), item[0][1:]))  # fmt: skip
    lines = [f"what one more training language costs (slope of cost = intercept + slope · L; all: {GROWTH_FILE}):"]
    for (strategy, source, policy), fits in curves:
        name = strategy + (" (predicted)" if source == PREDICTED else "")
        name += f", {policy}" if several[(strategy, source)] else ""
        lines.append(f"  {name:<13} {_cells({fit.metric: fit for fit in fits.itertuples(index=False)})}")
    return lines


def _cells(fits: dict) -> str:
    """'time per step X (method); peak tensor memory Y (method)' from one curve's fits by metric, the method named
    once at the end where both intervals were made the same way."""
    texts = [(label, per_language_text(fits[column], METRIC[column].kind), fits[column].interval)
             for column, label in SUMMARY_METRICS if column in fits]  # fmt: skip
    methods = {method for _, _, method in texts}
    suffix = f" ({methods.pop()})" if len(methods) == 1 else ""
    if not suffix or not all(text.endswith(suffix) for _, text, _ in texts):
        suffix = ""
    return "; ".join(f"{label} {text.removesuffix(suffix)}" for label, text, _ in texts) + suffix
