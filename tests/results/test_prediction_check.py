"""Tests for bench.results.prediction_check: measured and predicted rows of one configuration paired, errors right."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.results.markdown import prediction_check_block
from bench.results.prediction_check import PAIR_COLUMNS, prediction_pairs
from bench.results.store import RESULTS_FILE

MIB = 2**20


def _rows() -> pd.DataFrame:
    common = {"model": "xlmr-base", "seed": 0, "batch_size": 8, "max_length": 64, "mixed_precision": "no",
              "tokenizer_policy": "shared-all", "device_type": "cpu", "model_params": 278_000_000, "vocab_size": 250_002}
    rows = []
    for strategy, tensor, rss in (("hybrid", 4000 * MIB, 5000 * MIB), ("mbert", 4400 * MIB, 5600 * MIB)):
        for n in (2, 4):
            rows.append({**common, "run_id": f"{strategy}-{n}-t", "status": "ok", "strategy": strategy, "n_languages": n,
                         "peak_tensor_bytes": tensor + n * MIB, "peak_rss_bytes": rss})
            rows.append({**common, "run_id": f"{strategy}-{n}-p", "status": "predicted", "predicted": True,
                         "strategy": strategy, "n_languages": n, "peak_tensor_bytes": tensor + n * MIB + (MIB if n == 4 else 0),
                         "predicted_margin_bytes": 500 * MIB, "peak_rss_bytes": None})  # fmt: skip
    rows.append({**common, "run_id": "lonely", "status": "ok", "strategy": "monolingual", "n_languages": 2,
                 "peak_tensor_bytes": 1, "peak_rss_bytes": 1})  # measured only: no pair
    return pd.DataFrame(rows)


def test_pairs_join_one_configuration_and_compute_relative_errors():
    from bench.results.fit import usable_runs

    pairs = prediction_pairs(usable_runs(_rows()))
    assert list(pairs.columns) == PAIR_COLUMNS and len(pairs) == 4 and "monolingual" not in set(pairs["strategy"])
    exact = pairs[(pairs["strategy"] == "hybrid") & (pairs["n_languages"] == 2)].iloc[0]
    assert exact.tensor_error == 0.0
    off = pairs[(pairs["strategy"] == "hybrid") & (pairs["n_languages"] == 4)].iloc[0]
    assert off.tensor_error == pytest.approx(MIB / (4004 * MIB))
    assert off.rss_error == pytest.approx((4005 + 500) / 5000 - 1)


def test_the_block_states_the_error_range(tmp_path):
    _rows().to_parquet(tmp_path / RESULTS_FILE)
    block = prediction_check_block(tmp_path)
    assert "4 configurations" in block and "to the byte in 2 of 4" in block and "from +0.00% to +0.02%" in block
    assert "fp32" in block and "| 250,002 |" in block
    assert len([line for line in block.splitlines() if line.startswith("| xlmr-base")]) == 4
