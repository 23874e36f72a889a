"""A few seconds that say how fast this machine is, so times from different machines compare as ratios.

Measured once per sweep, with the runs' thread count, and written beside its launch order in
RESULTS_DIR/sweeps.jsonl: fp32 matmul throughput (GFLOP/s, a 1024x1024 product, the work a
transformer step is made of) and memory bandwidth (GB/s, copying a 256 MiB tensor). Each is the
median of several timed repeats after a warm-up.
"""

from __future__ import annotations

import statistics
import time

import torch

MATMUL_SIZE = 1024
COPY_BYTES = 256 * 2**20


def _median_seconds(work, repeats: int) -> float:
    work()  # warm-up: first-touch pages, thread pool start
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def calibrate(threads: int, repeats: int = 7) -> dict:
    """{"matmul_gflops", "copy_gb_per_s", "threads", "cpu_model"-free}: a machine's speed, measured now."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
        b = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
        matmul_s = _median_seconds(lambda: torch.mm(a, b), repeats)
        source = torch.empty(COPY_BYTES // 4, dtype=torch.float32).fill_(1.0)
        target = torch.empty_like(source)
        copy_s = _median_seconds(lambda: target.copy_(source), repeats)
    finally:
        torch.set_num_threads(previous)
    return {
        "matmul_gflops": round(2 * MATMUL_SIZE**3 / matmul_s / 1e9, 2),
        "copy_gb_per_s": round(2 * COPY_BYTES / copy_s / 1e9, 2),  # read + write
        "threads": threads,
    }
