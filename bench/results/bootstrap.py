"""The hierarchical paired bootstrap of a run-level retrieval metric over seeds and question clusters.

A run-level metric (map_mono, map_cross, map_multi, rank_distance) is a macro average: the mean over
cells (a query language, or an ordered language pair for map_cross) of the mean per-query value in the
cell, exactly as bench.evaluation.retrieval.summarize reports it. Its uncertainty has two sources:
the training seed and the questions the evaluation set happens to hold. One replicate resamples both:

* question clusters (query_id: a question and its translations) with replacement, as a multinomial
  weight per cluster. Every run of every arm in a comparison is evaluated on the same questions, so
  one weight vector per replicate reweights all of them (paired by question). Seeds and questions are
  crossed, not nested: drawing clusters afresh for each resampled seed would average the question
  variance away over seeds and make the intervals too narrow;
* seeds with replacement, as a multinomial weight per run: jointly for the arms of a paired
  difference (runs of two arms with one seed share their data order and initialisation), on their
  own for statistics over several arms (which may have different numbers of seeds).

For speed each run becomes a (clusters x cells) matrix of value sums and of query counts; a chunk of
replicates' cluster weights W (replicates x clusters) turns them into cell sums W @ S and counts
W @ N in one matrix product. A cell whose count is 0 in a replicate is left out of that replicate's
macro average.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from bench.errors import DataError

# metric -> (setting, the per-query column averaged, the columns that name a cell of the macro average)
CELLS = {
    "map_mono": ("mono", "ap", ("query_lang",)),
    "map_cross": ("cross", "ap", ("query_lang", "pool_lang")),
    "map_multi": ("multi", "ap", ("query_lang",)),
    "rank_distance": ("multi", "rank_distance", ("query_lang",)),
}
METRICS = tuple(CELLS)
# bench.evaluation.retrieval.QUERY_COLUMNS (not imported: that module loads torch)
PER_QUERY_COLUMNS = ("set", "setting", "query_lang", "pool_lang", "query_id", "ap", "rank_distance")
# z(0.975) + z(0.80) = 1.96 + 0.84: the true difference a two-sided 5% test detects with 80% power.
MDE_FACTOR = 2.8
CHUNK = 512  # replicates per matrix product: bounds memory at chunk x runs x cells floats

Statistic = Callable[[np.ndarray], np.ndarray]  # (replicates, arms) arm means -> (replicates,)


@dataclass(frozen=True)
class CellStack:
    """Runs' value sums and query counts per (question cluster, cell), on one shared cluster index.

    Arrays are (clusters, runs, cells); runs are ordered arm by arm and `arm_sizes` says how many
    runs each arm has. The shared cluster index is what pairs the arms.
    """

    sums: np.ndarray
    counts: np.ndarray
    arm_sizes: tuple[int, ...]

    @property
    def n_clusters(self) -> int:
        return self.sums.shape[0]


def check_per_query(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """The frame itself, or a one-line DataError naming the per-query columns it lacks."""
    missing = [c for c in PER_QUERY_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{source} lacks per-query column(s) {', '.join(missing)}")
    return frame


def stack_cells(arms: Sequence[Sequence[pd.DataFrame]], metric: str) -> CellStack:
    """Sum each run's per-query values of `metric` by (cluster, cell); arms are lists of run frames.

    Rows whose value is NaN (rank_distance outside the multi setting) are not queries of the metric.
    """
    setting, value, keys = CELLS[metric]
    frames = [frame for runs in arms for frame in runs]
    data = pd.concat([frame[["setting", value, "query_id", *keys]] for frame in frames], ignore_index=True)
    run = np.repeat(np.arange(len(frames)), [len(frame) for frame in frames])
    keep = (data["setting"] == setting).to_numpy() & data[value].notna().to_numpy()
    data, run = data[keep], run[keep]
    clusters, _ = pd.factorize(data["query_id"].astype(str), sort=True)
    cells = data.groupby(list(keys), sort=True, observed=True).ngroup().to_numpy()
    n_clusters, n_runs, n_cells = int(clusters.max(initial=-1)) + 1, len(frames), int(cells.max(initial=-1)) + 1
    flat = (clusters * n_runs + run) * n_cells + cells
    size = n_clusters * n_runs * n_cells
    shape = (n_clusters, n_runs, n_cells)
    sums = np.bincount(flat, weights=data[value].to_numpy(float), minlength=size).reshape(shape)
    counts = np.bincount(flat, minlength=size).astype(float).reshape(shape)
    return CellStack(sums, counts, tuple(len(runs) for runs in arms))


def macro_metric(stack: CellStack, cluster_weights: np.ndarray) -> np.ndarray:
    """Each run's macro-averaged metric under each row of cluster weights: (replicates, runs).

    A cell's mean is the weighted mean of its queries (a query weighs its cluster's multiplicity);
    cells with no weight are left out, and a run with no weighted cell at all is NaN.
    """
    n_clusters, n_runs, n_cells = stack.sums.shape
    weights = np.asarray(cluster_weights, dtype=float)
    sums = (weights @ stack.sums.reshape(n_clusters, -1)).reshape(-1, n_runs, n_cells)
    counts = (weights @ stack.counts.reshape(n_clusters, -1)).reshape(-1, n_runs, n_cells)
    present = counts > 0
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=present)
    with np.errstate(invalid="ignore", divide="ignore"):
        return means.sum(axis=2) / present.sum(axis=2)


def run_metric(frame: pd.DataFrame, metric: str) -> float:
    """One run's metric on one set's per-query rows: the harness's macro average (every query weighs 1)."""
    stack = stack_cells([[frame]], metric)
    if stack.n_clusters == 0:
        return float("nan")
    return float(macro_metric(stack, np.ones((1, stack.n_clusters)))[0, 0])


def run_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """Every bootstrapped metric of one run on one set (NaN where the set has no such queries)."""
    return {metric: run_metric(frame, metric) for metric in METRICS}


def difference(means: np.ndarray) -> np.ndarray:
    """First arm minus second arm."""
    return means[:, 0] - means[:, 1]


def extreme(expect: str) -> Statistic:
    """The first arm's margin over every other arm: min of the differences (largest), max (smallest).

    An intersection-union statistic: it is beyond 0 only when every pairwise difference is.
    """
    reduce = np.min if expect == "greater" else np.max
    return lambda means: reduce(means[:, :1] - means[:, 1:], axis=1)


def slope(alphas: Sequence[float]) -> Statistic:
    """The least-squares slope of the arm means against each arm's alpha."""
    x = np.asarray(alphas, dtype=float) - np.mean(alphas)
    return lambda means: (means - means.mean(axis=1, keepdims=True)) @ x / (x @ x)


@dataclass(frozen=True)
class BootstrapResult:
    """A statistic on the original data and its bootstrap replicates; intervals and p-values derive from them.

    One-sided p-values count the replicates on the null side, with the usual +1 so none is 0.
    """

    estimate: float
    replicates: np.ndarray
    confidence: float = 0.95

    @property
    def finite(self) -> np.ndarray:
        return self.replicates[np.isfinite(self.replicates)]

    @property
    def ci(self) -> tuple[float, float]:
        """The percentile interval at `confidence`."""
        tail = (1 - self.confidence) / 2
        low, high = np.quantile(self.finite, [tail, 1 - tail])
        return float(low), float(high)

    @property
    def se(self) -> float:
        return float(np.std(self.finite, ddof=1))

    @property
    def min_detectable(self) -> float:
        """The smallest true effect found with 80% power by a two-sided 5% test at this standard error."""
        return MDE_FACTOR * self.se

    def p_greater(self, bound: float = 0.0) -> float:
        """One-sided p against `statistic <= bound` (small: evidence that it is above `bound`)."""
        return (1 + int(np.sum(self.finite <= bound))) / (1 + self.finite.size)

    def p_less(self, bound: float = 0.0) -> float:
        """One-sided p against `statistic >= bound` (small: evidence that it is below `bound`)."""
        return (1 + int(np.sum(self.finite >= bound))) / (1 + self.finite.size)

    @property
    def p_two_sided(self) -> float:
        """Two-sided p against `statistic = 0`."""
        return min(1.0, 2 * min(self.p_greater(), self.p_less()))

    def p_equivalent(self, margin: float) -> float:
        """TOST: the larger of the one-sided p's against `<= -margin` and against `>= margin`."""
        return max(self.p_greater(-margin), self.p_less(margin))

    def p_outside(self, margin: float) -> float:
        """Two-sided p against `-margin <= statistic <= margin` (small: beyond the margin on one side)."""
        return min(1.0, 2 * min(self.p_greater(margin), self.p_less(-margin)))


def seed_weights(arm_sizes: Sequence[int], n: int, rng: np.random.Generator, paired: bool) -> np.ndarray:
    """Each run's multiplicity in `n` seed resamples, (n, runs): one draw shared by all arms when paired."""
    if paired:
        (size,) = set(arm_sizes)
        return np.tile(rng.multinomial(size, np.full(size, 1 / size), size=n), len(arm_sizes))
    return np.hstack([rng.multinomial(size, np.full(size, 1 / size), size=n) for size in arm_sizes])


def arm_means(per_run: np.ndarray, weights: np.ndarray, arm_sizes: Sequence[int]) -> np.ndarray:
    """The seed-weighted mean of each arm's run metrics, (replicates, arms)."""
    weighted = np.where(weights > 0, per_run * weights, 0.0)
    starts = np.cumsum([0, *arm_sizes[:-1]])
    return np.add.reduceat(weighted, starts, axis=1) / np.asarray(arm_sizes, dtype=float)


def hierarchical_bootstrap(
    stack: CellStack,
    statistic: Statistic,
    *,
    replicates: int,
    rng: np.random.Generator,
    paired_seeds: bool,
    confidence: float = 0.95,
) -> BootstrapResult:
    """The statistic of the arm means on the data, and on `replicates` resamples of clusters and seeds.

    `paired_seeds` resamples one set of seed indices for all arms (their runs must be in seed order and
    equal in number); otherwise each arm's seeds are resampled on its own. Clusters are always joint.
    """
    n_clusters, sizes = stack.n_clusters, stack.arm_sizes
    point = statistic(arm_means(macro_metric(stack, np.ones((1, n_clusters))), np.ones((1, sum(sizes))), sizes))
    values = np.empty(replicates)
    for start in range(0, replicates, CHUNK):
        n = min(CHUNK, replicates - start)
        clusters = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=n)
        seeds = seed_weights(sizes, n, rng, paired_seeds)
        values[start:start + n] = statistic(arm_means(macro_metric(stack, clusters), seeds, sizes))
    return BootstrapResult(float(point[0]), values, confidence)
