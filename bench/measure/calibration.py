"""A few seconds that say how fast this machine is, so times from different machines compare as ratios.

Measured once per sweep, with the runs' thread count, and written beside its launch order in
RESULTS_DIR/sweeps.jsonl, and again when the sweep ends (drift): fp32 matmul throughput (GFLOP/s, a
1024x1024 product, the work a transformer step is made of) and memory bandwidth (GB/s, copying a 256
MiB tensor). Each is the median of several short trials, each the median of timed repeats after a
warm-up; the trials' spread says whether the machine was steady while it was measured.
"""

from __future__ import annotations

import statistics
import time

import torch

MATMUL_SIZE = 1024
COPY_BYTES = 256 * 2**20
STABLE_SPREAD = 0.10  # trials within 10% of each other: the calibration is a usable unit


def _median_seconds(work, repeats: int) -> float:
    work()  # warm-up: first-touch pages, thread pool start
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def calibrate(threads: int, repeats: int = 7, trials: int = 5) -> dict:
    """A machine's speed, measured now: fp32 matmul GFLOP/s and copy GB/s, each the median of `trials`
    short trials (each the median of `repeats` timed repeats), with the trials' spread ((max - min) /
    median) recorded: a calibration taken while something else runs reads low and spreads wide (measured
    on this project's machines: 127 GFLOP/s quiet, about half beside another 2-thread job), so `stable`
    says whether it can serve as a unit."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
        b = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
        source = torch.empty(COPY_BYTES // 4, dtype=torch.float32).fill_(1.0)
        target = torch.empty_like(source)
        matmul = [2 * MATMUL_SIZE**3 / _median_seconds(lambda: torch.mm(a, b), repeats) / 1e9 for _ in range(trials)]
        copy = [2 * COPY_BYTES / _median_seconds(lambda: target.copy_(source), repeats) / 1e9 for _ in range(trials)]  # read + write
    finally:
        torch.set_num_threads(previous)
    spread = (max(matmul) - min(matmul)) / statistics.median(matmul)
    return {
        "matmul_gflops": round(statistics.median(matmul), 2),
        "copy_gb_per_s": round(statistics.median(copy), 2),
        "matmul_spread": round(spread, 3),
        "stable": spread < STABLE_SPREAD,
        "trials": trials,
        "threads": threads,
    }
