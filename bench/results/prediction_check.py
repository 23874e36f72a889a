"""Predicted against measured: each configuration trained for real and predicted on fake tensors, side by side.

A results directory that holds both kinds of row for the same configuration (`+experiment=real-arch-cpu`:
the real XLM-R base and mBERT base architectures on this CPU) says how far a prediction can be trusted:
the tracked step's tensor peak (what `bench.predict` claims to the byte on CPU in fp32) and the process's
peak RSS against the prediction's total (tensor peak + the host process it read before any model existed).
"""

from __future__ import annotations

import pandas as pd

from bench.results.fit import MEASURED, PREDICTED

# What makes two rows the same configuration: everything a run's memory depends on but the mode.
PAIR_KEYS = ["model", "strategy", "n_languages", "seed", "batch_size", "max_length", "mixed_precision",
             "tokenizer_policy", "device_type"]  # fmt: skip
PAIR_COLUMNS = [*PAIR_KEYS, "model_params", "embedding_rows", "measured_tensor_bytes", "predicted_tensor_bytes",
                "tensor_error", "measured_rss_bytes", "predicted_total_bytes", "rss_error"]  # fmt: skip


def prediction_pairs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration that has a measured and a predicted row (as from `usable_runs`): both peaks and
    the relative errors (predicted / measured − 1) of the tensor peak and of the total against peak RSS."""
    keys = [k for k in PAIR_KEYS if k in runs]
    if runs.empty or "source" not in runs:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    keyed = runs.assign(**{k: runs[k].fillna("") for k in keys if runs[k].dtype == object})
    measured = keyed[keyed["source"] == MEASURED].drop_duplicates(keys, keep="last")
    predicted = keyed[keyed["source"] == PREDICTED].drop_duplicates(keys, keep="last")
    margin = predicted["predicted_margin_bytes"] if "predicted_margin_bytes" in predicted else 0
    predicted = predicted.assign(predicted_total_bytes=predicted["peak_tensor_bytes"] + margin)
    measured = measured.assign(embedding_rows=measured.get("embedding_rows", measured.get("vocab_size")))
    both = measured[[*keys, "model_params", "embedding_rows", "peak_tensor_bytes", "peak_rss_bytes"]].merge(
        predicted[[*keys, "peak_tensor_bytes", "predicted_total_bytes"]], on=keys, suffixes=("", "_predicted"))
    out = both.rename(columns={"peak_tensor_bytes": "measured_tensor_bytes", "peak_rss_bytes": "measured_rss_bytes",
                               "peak_tensor_bytes_predicted": "predicted_tensor_bytes"})  # fmt: skip
    out["tensor_error"] = out["predicted_tensor_bytes"] / out["measured_tensor_bytes"] - 1
    out["rss_error"] = out["predicted_total_bytes"] / out["measured_rss_bytes"] - 1
    return out.reindex(columns=PAIR_COLUMNS).sort_values(keys, ignore_index=True)
