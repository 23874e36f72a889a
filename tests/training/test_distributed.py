"""Several devices per run: CPU DDP with gloo, two processes, checked against the single-process batches."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from bench.config import plan_runs
from bench.core.pairs import PairRef
from bench.training.distributed import shard_batch
from bench.errors import ConfigError
from bench.measure.profiler import RunProfiler
from bench.stages import plan_batches, prepare_data


def test_shards_are_contiguous_and_their_union_is_the_batch():
    batch = [PairRef(g, "en", "de") for g in range(8)]
    shards = [shard_batch(batch, rank, 4) for rank in range(4)]
    assert sum(shards, []) == batch
    with pytest.raises(ConfigError, match="divisible"):
        shard_batch(batch, 0, 3)


@pytest.mark.slow
def test_two_process_gloo_run_splits_the_single_process_batches(tmp_path):
    overrides = ["strategy=hybrid", "languages=2", "eval=none", "train.steps_per_language=3", "train.threads=1",
                 "train.batch_size=8", "train.devices=2", "profiler.dump_batches=true", f"results.dir={tmp_path}"]
    proc = subprocess.run([sys.executable, "-m", "bench.run", *overrides], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]

    (planned,) = plan_runs("config", overrides, sweep=False)
    cfg = planned.config
    rid = cfg.run_id
    ranks = [json.loads((tmp_path / "batches" / f"{rid}-rank{r}.json").read_text()) for r in range(2)]
    prepared = prepare_data(cfg, RunProfiler(torch.device("cpu")))
    single = plan_batches(cfg, prepared.pairs)
    expected = [[[prepared.pairs.index.groups[r.group], r.query_lang, r.passage_lang] for r in batch] for batch in single]
    assert [a + b for a, b in zip(*ranks)] == expected

    row = pd.read_parquet(tmp_path / "runs" / f"{rid}.parquet").iloc[0]
    assert row["status"] == "ok" and row["n_devices"] == 2 and bool(row["gather_negatives"])
    assert len(row["rank_peak_tensor_bytes"]) == 2 and row["peak_tensor_bytes"] == max(row["rank_peak_tensor_bytes"])
    assert row["samples_per_s_per_device"] == pytest.approx(row["samples_per_s"] / 2)
