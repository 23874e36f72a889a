"""A run's figures do not depend on what ran before it; memory figures are exact and analytic."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from bench.models.encoder import build_encoder
from tests.conftest import compose

pytestmark = pytest.mark.slow

FAST = ["strategy=hybrid", "languages=2", "eval=none", "train.steps_per_language=3", "train.warmup_steps=1", "train.threads=1"]


def _rows(results_dir):
    return pd.read_parquet(results_dir / "results.parquet").set_index("batch_size")


def test_run_after_a_heavier_one_measures_the_same_as_alone(tmp_path):
    # The sweep runs batch 32 (heavier) first, then batch 8; the second process must not inherit anything.
    after = subprocess.run([sys.executable, "-m", "bench.sweep", *FAST, "train.batch_size=32,8", "sweep.order_seed=0",
                            f"results.dir={tmp_path / 'after'}"], capture_output=True, text=True, timeout=600)  # fmt: skip
    order = json.loads((tmp_path / "after" / "sweeps.jsonl").read_text().splitlines()[0])["order"]
    assert [int(pd.read_parquet(tmp_path / "after" / "runs" / f"{rid}.parquet")["batch_size"].iloc[0]) for rid in order] == [32, 8]
    alone = subprocess.run([sys.executable, "-m", "bench.sweep", *FAST, "train.batch_size=8", f"results.dir={tmp_path / 'alone'}"],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert after.returncode == 0 and alone.returncode == 0, after.stderr[-2000:] + alone.stderr[-2000:]
    after_rows, alone_rows = _rows(tmp_path / "after"), _rows(tmp_path / "alone")
    heavy, light, single = after_rows.loc[32], after_rows.loc[8], alone_rows.loc[8]
    assert heavy["peak_tensor_bytes"] > light["peak_tensor_bytes"]
    for column in ("peak_tensor_bytes", "peak_param_bytes", "peak_grad_bytes", "peak_optimizer_bytes", "peak_activation_bytes", "tracked_step"):
        assert light[column] == single[column], column
    assert abs(light["peak_rss_bytes"] / single["peak_rss_bytes"] - 1) < 0.05
    assert list(light["loss_curve"]) == list(single["loss_curve"]), "same config and seed: the same loss curve"

    # The breakdown sums to the total; parameters and optimizer state match the analytic count exactly.
    parts = single[["peak_param_bytes", "peak_grad_bytes", "peak_optimizer_bytes", "peak_activation_bytes"]].sum()
    assert parts == single["peak_tensor_bytes"]
    assert single["peak_param_bytes"] == single["model_params"] * 4  # fp32; the contrastive model is the encoder
    encoder = build_encoder(compose().model, tokenizer_vocab_size=int(single["vocab_size"]))
    n_tensors = len(list(encoder.parameters()))
    # AdamW: exp_avg and exp_avg_sq per parameter, plus a 4-byte float32 step per parameter tensor.
    assert single["peak_optimizer_bytes"] == 2 * single["peak_param_bytes"] + 4 * n_tensors
