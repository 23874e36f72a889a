"""Several devices per run: one global batch per step, split across ranks; per-rank figures gathered.

The sampler decides each step's global batch exactly as on one device, and each rank takes a
contiguous slice of it, so a batch strategy means the same thing on 1 or N devices. With
`train.gather_negatives` the passages are gathered across ranks inside the objective, so every
query still sees the whole global batch as negatives.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from bench.core.pairs import PairBatch
from bench.errors import ConfigError


def shard_batch(batch: PairBatch, rank: int, world_size: int) -> PairBatch:
    """This rank's contiguous slice of the global batch (the union over ranks is the batch, in order)."""
    if len(batch) % world_size:
        raise ConfigError(f"train.batch_size={len(batch)} must be divisible by train.devices={world_size}")
    size = len(batch) // world_size
    return batch[rank * size : (rank + 1) * size]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_gather_numbers(value: float | int | None) -> list:
    """Every rank's value of a scalar (None where a rank has none), in rank order."""
    if not is_distributed():
        return [value]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def all_sum(values: list[int]) -> list[int]:
    """Element-wise sum over ranks (e.g. samples and tokens processed)."""
    if not is_distributed():
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return [int(v) for v in tensor.tolist()]


def is_main_rank() -> bool:
    """Rank 0 (or the only process): the one that writes the run's row."""
    return int(os.environ.get("RANK", "0")) == 0
