"""The real architectures (random init from their published configs) train end to end on CPU."""

import subprocess
import sys

import pandas as pd
import pytest

from bench.config import plan_runs
from tests.conftest import quick_run

pytestmark = pytest.mark.slow

TINY_BATCH = [*quick_run(steps=2, batch_size=2, threads=2, warmup=0, max_length=16), "eval=none", "languages=2"]


@pytest.mark.parametrize("model, strategy", [("mbert-base", "hybrid"), ("xlmr-base", "mbert"), ("labse", "crosslingual")])
def test_preset_trains_two_steps(tmp_path, model, strategy):
    overrides = [f"model={model}", f"strategy={strategy}", *TINY_BATCH, f"results.dir={tmp_path}"]
    proc = subprocess.run([sys.executable, "-m", "bench.run", *overrides], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (planned,) = plan_runs("config", overrides, sweep=False)
    row = pd.read_parquet(tmp_path / "runs" / f"{planned.config.run_id}.parquet").iloc[0]
    assert row["status"] == "ok" and len(row["loss_curve"]) == 2
    # fp32 parameters of the whole objective (the MLM head adds its transform) are resident at the peak
    assert row["peak_param_bytes"] >= row["model_params"] * 4
    pooler = 768 * 768 + 768  # the published counts include BERT's pooler, which pooling of our own replaces
    assert round((row["model_params"] + pooler) / 1e6) == {"mbert-base": 178, "xlmr-base": 278, "labse": 471}[model]
