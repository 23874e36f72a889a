"""Is hybrid's difference from a pure strategy resolved? Paired by seed, with a t interval.

Runs of two strategies at the same number of languages L and the same seed share their data, their
seeded initialisation and their evaluation, so their difference is a paired difference. For each
quality metric and L the mean paired difference (hybrid minus the other) gets a 95% t interval over
the seeds; a difference whose interval contains 0 is "not resolved", whatever its sign. The paper's
pattern (arXiv 2408.10536) is then checked claim by claim, each claim "holds", "contradicted" or "not
resolved".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.core.metric_names import eval_column
from bench.results.fit import t_quantile_975
from bench.results.schema import METRIC

HYBRID = "hybrid"


@dataclass(frozen=True)
class PairedDifference:
    metric: str
    n_languages: int
    other: str
    n_pairs: int
    mean: float
    low: float
    high: float

    @property
    def resolved(self) -> bool:
        return self.n_pairs >= 2 and (self.low > 0 or self.high < 0)

    def verdict(self) -> str:
        if not self.resolved:
            return "not resolved"
        better = (self.mean > 0) == (METRIC[self.metric].direction == "higher")
        return f"hybrid {'better' if better else 'worse'}"


def paired_difference(runs: pd.DataFrame, metric: str, n_languages: int, other: str) -> PairedDifference | None:
    at_l = runs[(runs["n_languages"] == n_languages) & runs[metric].notna()]
    hybrid = at_l[at_l["strategy"] == HYBRID].set_index("seed")[metric]
    rival = at_l[at_l["strategy"] == other].set_index("seed")[metric]
    seeds = sorted(set(hybrid.index) & set(rival.index))
    if not seeds:
        return None
    diffs = [float(hybrid[s]) - float(rival[s]) for s in seeds]
    mean = sum(diffs) / len(diffs)
    if len(diffs) < 2:
        return PairedDifference(metric, n_languages, other, 1, mean, math.nan, math.nan)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    half = t_quantile_975(len(diffs) - 1) * sd / math.sqrt(len(diffs))
    return PairedDifference(metric, n_languages, other, len(diffs), mean, mean - half, mean + half)


def hybrid_differences(runs: pd.DataFrame, metrics: list[str]) -> list[PairedDifference]:
    """Hybrid against monolingual and cross-lingual, for every metric and L where both were measured."""
    out = []
    for metric in metrics:
        for n_languages in sorted(runs["n_languages"].unique()):
            for other in ("monolingual", "crosslingual"):
                diff = paired_difference(runs, metric, int(n_languages), other)
                if diff is not None:
                    out.append(diff)
    return out


# The paper's pattern: (metric suffix, rival, the direction hybrid should differ in, the claim in words).
PAPER_CLAIMS = (
    ("map_cross", "monolingual", "not worse", "hybrid at least as good as monolingual on cross-lingual mAP"),
    ("map_multi", "monolingual", "not worse", "hybrid at least as good as monolingual on multilingual mAP"),
    ("map_mono", "crosslingual", "not worse", "hybrid at least as good as cross-lingual on monolingual mAP"),
    ("rank_distance", "monolingual", "better", "hybrid has a lower rank distance than monolingual"),
)


def claim_verdict(diff: PairedDifference | None, wanted: str) -> str:
    """'holds' only when the interval supports the claim; 'contradicted' when it supports the opposite."""
    if diff is None or diff.n_pairs < 2:
        return "not measured"
    verdict = diff.verdict()
    if wanted == "better":
        return {"hybrid better": "holds", "hybrid worse": "contradicted"}.get(verdict, "not resolved")
    # "not worse": a resolved improvement supports it; a resolved loss contradicts it; otherwise it is
    # consistent with equality, which the interval cannot prove.
    return {"hybrid better": "holds", "hybrid worse": "contradicted"}.get(verdict, "not resolved (no resolved loss)")


def paper_pattern(runs: pd.DataFrame, role: str) -> list[tuple[int, str, str]]:
    """(L, claim, verdict) for every claim at every L."""
    rows = []
    for n_languages in sorted(runs["n_languages"].unique()):
        for suffix, rival, wanted, claim in PAPER_CLAIMS:
            metric = eval_column(role, suffix)
            diff = paired_difference(runs, metric, int(n_languages), rival) if metric in runs else None
            rows.append((int(n_languages), claim, claim_verdict(diff, wanted)))
    return rows
