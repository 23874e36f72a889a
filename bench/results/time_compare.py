"""Is B slower than A? Step times of two results directories, compared so that the verdict does not flap.

Machines of one nominal kind differ by 1.5-2.5x and drift within a session, so raw seconds are not
compared: each side's per-step samples are multiplied by that side's calibration (the median fp32
matmul GFLOP/s of its sweeps, `sweeps.jsonl`), i.e. measured in units of work of a calibration matmul.
Runs are matched by configuration hash. The statistic is the geometric mean over matched configurations
of the ratio of median normalized step times (B / A). Its interval comes from a two-level bootstrap:
configurations with replacement (run-to-run noise: each configuration is one process per side), and
within each the steps of both runs with replacement. The verdict is "slower" or "faster" when the 95%
interval excludes 1, else "no change", always with the smallest slowdown this noise could detect
(2.8 standard errors of the log ratio: 80% power at 5% two-sided), in the spirit of asv's compare.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.results.store import SWEEPS_FILE, load_results, read_sweeps

MDE_FACTOR = 2.8


def calibration_gflops(results_dir: Path) -> float:
    """The median fp32 matmul GFLOP/s over the sweeps that wrote this directory."""
    values = [entry.get("calibration", {}).get("matmul_gflops") for entry in read_sweeps(results_dir)]
    values = [v for v in values if v]
    if not values:
        raise BenchError(f"{results_dir} records no calibration in {SWEEPS_FILE}: its runs have nothing to normalise by")
    return float(statistics.median(values))


def matched_steps(a: pd.DataFrame, b: pd.DataFrame) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(config_hash, A's step times, B's step times) for every ok configuration both sides measured."""
    def by_config(table: pd.DataFrame) -> dict[str, np.ndarray]:
        ok = table[(table["status"] == "ok") & table["step_times_s"].map(lambda v: v is not None and len(v) > 0)]
        return {row.config_hash: np.asarray(row.step_times_s, dtype=float) for row in ok.itertuples()}

    left, right = by_config(a), by_config(b)
    return [(key, left[key], right[key]) for key in sorted(set(left) & set(right))]


@dataclass(frozen=True)
class TimeComparison:
    ratio: float  # geometric mean over configurations of median(B) / median(A), calibration-normalised
    ci: tuple[float, float]
    min_detectable_slowdown: float  # e.g. 0.08: a true 8% slowdown would be found with 80% power
    n_configs: int
    verdict: str  # slower | faster | no change
    per_config: pd.DataFrame


def compare_steps(pairs: list[tuple[str, np.ndarray, np.ndarray]], scale_a: float = 1.0, scale_b: float = 1.0,
                  replicates: int = 2000, seed: int = 0) -> TimeComparison:
    """The comparison of matched step samples, each side multiplied by its scale (its calibration)."""
    if not pairs:
        raise BenchError("no configuration was measured on both sides (match by config_hash): nothing to compare")
    rng = np.random.default_rng(seed)
    logs = np.array([math.log(np.median(b) * scale_b / (np.median(a) * scale_a)) for _, a, b in pairs])
    boot = np.empty(replicates)
    for r in range(replicates):
        chosen = rng.integers(0, len(pairs), len(pairs))
        values = []
        for i in chosen:
            _, a, b = pairs[i]
            values.append(math.log(np.median(rng.choice(b, len(b))) * scale_b / (np.median(rng.choice(a, len(a))) * scale_a)))
        boot[r] = np.mean(values)
    low, high = np.quantile(boot, [0.025, 0.975])
    verdict = "slower" if low > 0 else "faster" if high < 0 else "no change"
    per_config = pd.DataFrame({"config_hash": [k for k, _, _ in pairs], "ratio": np.exp(logs),
                               "steps_a": [len(a) for _, a, _ in pairs], "steps_b": [len(b) for _, _, b in pairs]})  # fmt: skip
    return TimeComparison(float(math.exp(logs.mean())), (float(math.exp(low)), float(math.exp(high))),
                          float(math.exp(MDE_FACTOR * boot.std(ddof=1)) - 1), len(pairs), verdict, per_config)


def compare_dirs(base: Path, new: Path, replicates: int = 2000) -> TimeComparison:
    """B = new against A = base, each normalised by its own calibration."""
    pairs = matched_steps(load_results(base), load_results(new))
    return compare_steps(pairs, calibration_gflops(base), calibration_gflops(new), replicates)


def describe(result: TimeComparison, base: Path, new: Path) -> str:
    change = (result.ratio - 1) * 100
    return (f"{new} against {base}: step time x{result.ratio:.3f} ({change:+.1f}%), 95% interval "
            f"[{result.ci[0]:.3f}, {result.ci[1]:.3f}] over {result.n_configs} configurations, calibration-normalised: "
            f"{result.verdict}; the smallest slowdown this noise could detect: {result.min_detectable_slowdown * 100:.1f}%")
