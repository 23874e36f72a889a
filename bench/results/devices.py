"""Which strategy fits which GPU, up to how many languages: predicted rows read against device memory.

A predicted row (`mode=predict`, bench/predict.py) holds the tracked step's tensor peak and, apart, a
margin for what a tensor tracker cannot see (CUDA context, workspaces, fragmentation). What must fit
on a device is their sum. For each model and strategy, the largest language count whose predicted total
fits each device size is read off the rows as they are (no interpolation between language counts).
"""

from __future__ import annotations

import pandas as pd

from bench.results.fit import PREDICTED

GiB = 2**30
DEVICE_GIB = (16, 24, 40, 80)  # common GPU memory sizes: T4/V100-16, A10/L4/4090, A100-40, A100/H100-80
KEYS = ["model", "batch_size", "strategy", "device_type", "mixed_precision"]  # one curve against L each
DEVICE_FIT_COLUMNS = [*KEYS, "n_languages_min", "n_languages_max",
                      "total_gib_min", "total_gib_max", *(f"fits_{gib}gib" for gib in DEVICE_GIB)]  # fmt: skip


def predicted_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows predicted for a GPU (device_type cuda) with their total: tensor peak + margin (bytes and GiB).
    A CPU prediction's margin is the host process, not device memory, so it has no GPU to fit."""
    if "source" not in runs or "device_type" not in runs or runs.empty:
        return runs.iloc[0:0]
    rows = runs[(runs["source"] == PREDICTED) & (runs["device_type"] == "cuda") & runs["peak_tensor_bytes"].notna()].copy()
    margin = rows["predicted_margin_bytes"].fillna(0) if "predicted_margin_bytes" in rows else 0
    rows["total_bytes"] = rows["peak_tensor_bytes"] + margin
    rows["total_gib"] = rows["total_bytes"] / GiB
    return rows


def largest_fitting(levels: pd.Series, totals: pd.Series, device_bytes: float) -> int | None:
    """The largest language count whose total fits, if every smaller count fits too; None if the smallest does not."""
    fitting = None
    for level, total in sorted(zip(levels, totals)):
        if total > device_bytes:
            break
        fitting = int(level)
    return fitting


def device_fit(runs: pd.DataFrame, devices=DEVICE_GIB) -> pd.DataFrame:
    """One row per (model, batch size, strategy, device type, precision): the L range predicted, the totals at its
    ends, and for each device size the largest L that fits (median over seeds where a configuration has several)."""
    rows = predicted_rows(runs)
    keys = KEYS
    out = []
    for values, group in rows.groupby(keys, sort=True):
        medians = group.groupby("n_languages")["total_bytes"].median()
        entry = dict(zip(keys, values))
        entry.update(n_languages_min=int(medians.index.min()), n_languages_max=int(medians.index.max()),
                     total_gib_min=medians.iloc[0] / GiB, total_gib_max=medians.iloc[-1] / GiB)  # fmt: skip
        for gib in devices:
            entry[f"fits_{gib}gib"] = largest_fitting(medians.index.to_series(), medians, gib * GiB)
        out.append(entry)
    return pd.DataFrame(out, columns=[*KEYS, *DEVICE_FIT_COLUMNS[len(KEYS):len(KEYS) + 4], *(f"fits_{gib}gib" for gib in devices)])


def fit_text(fitting, n_max: int) -> str:
    """'all (to L=104)', 'to L=32', or 'none'."""
    if fitting is None or pd.isna(fitting):
        return "none"
    return f"all (to L={n_max})" if int(fitting) >= n_max else f"to L={int(fitting)}"
