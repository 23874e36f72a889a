"""Is a strategy's difference from its rivals resolved? Paired by seed, with a t interval.

Runs of two strategies at the same number of languages L and the same seed share their data, their
seeded initialisation and their evaluation, so their difference is a paired difference. For each
quality metric and L the mean paired difference (the strategy minus the other) gets a 95% t interval
over the seeds; a difference whose interval contains 0 is "not resolved", whatever its sign. Which
strategies are compared with which, and the published claims checked claim by claim ("holds",
"contradicted" or "not resolved"), are traits the strategies declare in the registry
(`compared_with`, `paper_claims`): this module names none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.core.metric_names import eval_column
from bench.results.fit import t_quantile_975
from bench.results.schema import METRIC
from bench.strategies import strategy_class, strategy_names


@dataclass(frozen=True)
class PairedDifference:
    metric: str
    n_languages: int
    strategy: str
    other: str
    n_pairs: int
    mean: float
    low: float
    high: float

    @property
    def resolved(self) -> bool:
        return self.n_pairs >= 2 and (self.low > 0 or self.high < 0)

    @property
    def better(self) -> bool:
        """Whether the mean difference favours `strategy` (in the metric's better direction)."""
        return (self.mean > 0) == (METRIC[self.metric].direction == "higher")

    def verdict(self) -> str:
        if not self.resolved:
            return "not resolved"
        return f"{self.strategy} {'better' if self.better else 'worse'}"


def paired_difference(runs: pd.DataFrame, metric: str, n_languages: int, strategy: str, other: str) -> PairedDifference | None:
    """`strategy` minus `other` at L = n_languages, paired by seed, with a 95% t interval over the pairs.
    None when a seed holds several configurations of either (e.g. hybrid at several alphas): which to pair is
    then an experiment's choice, made in its claims file (bench.results.claims), not here."""
    at_l = runs[(runs["n_languages"] == n_languages) & runs[metric].notna()]
    ours = at_l[at_l["strategy"] == strategy].set_index("seed")[metric]
    rival = at_l[at_l["strategy"] == other].set_index("seed")[metric]
    seeds = sorted(set(ours.index) & set(rival.index))
    if not seeds or ours.index.duplicated().any() or rival.index.duplicated().any():
        return None
    diffs = [float(ours[s]) - float(rival[s]) for s in seeds]
    mean = sum(diffs) / len(diffs)
    if len(diffs) < 2:
        return PairedDifference(metric, n_languages, strategy, other, 1, mean, math.nan, math.nan)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    half = t_quantile_975(len(diffs) - 1) * sd / math.sqrt(len(diffs))
    return PairedDifference(metric, n_languages, strategy, other, len(diffs), mean, mean - half, mean + half)


def compared_strategies(runs: pd.DataFrame) -> list[type]:
    """The registered strategies in these runs that declare rivals (`compared_with`), in registry order."""
    present = set(runs["strategy"])
    return [strategy_class(name) for name in strategy_names() if name in present and strategy_class(name).compared_with]


def paired_differences(runs: pd.DataFrame, metrics: list[str]) -> list[PairedDifference]:
    """Every strategy against the rivals it declares, for every metric and L where both were measured."""
    out = []
    for cls in compared_strategies(runs):
        for metric in metrics:
            for n_languages in sorted(runs["n_languages"].unique()):
                for other in cls.compared_with:
                    diff = paired_difference(runs, metric, int(n_languages), cls.name, other)
                    if diff is not None:
                        out.append(diff)
    return out


def claim_verdict(diff: PairedDifference | None, wanted: str) -> str:
    """'holds' only when the interval supports the claim; 'contradicted' when it supports the opposite."""
    if diff is None or diff.n_pairs < 2:
        return "not measured"
    if diff.resolved:
        return "holds" if diff.better else "contradicted"
    # "not worse" is consistent with equality, which the interval cannot prove.
    return "not resolved" if wanted == "better" else "not resolved (no resolved loss)"


def paper_pattern(runs: pd.DataFrame, role: str) -> list[tuple[int, str, str]]:
    """(L, claim, verdict) for every claim a strategy in these runs declares, at every L."""
    rows = []
    for cls in compared_strategies(runs):
        for n_languages in sorted(runs["n_languages"].unique()):
            for claim in cls.paper_claims:
                metric = eval_column(role, claim.metric)
                diff = paired_difference(runs, metric, int(n_languages), cls.name, claim.rival) if metric in runs else None
                rows.append((int(n_languages), claim.text, claim_verdict(diff, claim.wanted)))
    return rows
