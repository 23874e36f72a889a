"""Quality against cost during training, and the cost to reach a target quality (time-to-train, as MLPerf measures it).

Every `eval.curve.every_steps` steps (and after the last) the encoder is evaluated on a fixed subset
of the held-out articles (the first `eval.curve.articles` of them by SHA-1 of the title, in every
language of the data, so every setting is there). Each point records steps, samples and training
seconds so far; the evaluation's own time is a stage of its own (`curve_eval_s`) and never enters
`train_s`. The cost to reach `eval.curve.target` is read off the first point that reaches it, so it
has the resolution of the evaluation interval; a target never reached stays missing, never zero.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.core.metric_names import DIRECTION
from bench.data.lareqa import LareqaDataset, articles_by_hash
from bench.evaluation.retrieval import Encoder, evaluate
from bench.evaluation.sets import EvalSet


def curve_subset(heldout: EvalSet, articles: int) -> EvalSet:
    """The first `articles` held-out articles (in the split's own SHA-1 order), every language."""
    dataset: LareqaDataset = heldout.dataset
    present = {q.article for part in dataset.by_lang.values() for q in part.questions}
    chosen = [a for a in articles_by_hash(dataset.article_titles) if a in present][:articles]
    return EvalSet(f"{heldout.name}[{articles} articles]", "curve", dataset.restrict_articles(set(chosen), "curve"))


@dataclass
class QualityCurve:
    """Calls `evaluate` on the subset at the planned steps and keeps the points."""

    subset: EvalSet
    metric: str  # a summary metric, e.g. map_multi
    every_steps: int
    total_steps: int
    samples_per_step: int
    train_seconds: Callable[[], float]  # training time so far, evaluation excluded
    batch_size: int
    query_chunk: int
    steps: list[float] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)
    train_s: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    summaries: list[dict[str, float | None]] = field(default_factory=list)  # every summary metric at each point

    def due(self, step: int) -> bool:
        done = step + 1
        return done % self.every_steps == 0 or done == self.total_steps

    def measure(self, step: int, encoder: Encoder) -> None:
        """Record one point after `step` (0-based), training seconds read before evaluating."""
        seconds = self.train_seconds()
        result = evaluate(encoder, [self.subset], batch_size=self.batch_size, query_chunk=self.query_chunk)
        self.steps.append(float(step + 1))
        self.samples.append(float((step + 1) * self.samples_per_step))
        self.train_s.append(seconds)
        summary = result.summaries[self.subset.name]
        self.values.append(float(summary[self.metric]))
        self.summaries.append({key: None if value is None else round(float(value), 6) for key, value in summary.items()})

    def record_fields(self, target: float | None) -> dict:
        fields = {"curve_set": self.subset.name, "curve_metric": self.metric, "curve_steps": self.steps,
                  "curve_samples": self.samples, "curve_train_s": self.train_s, "curve_values": self.values,
                  "curve_summaries": json.dumps(self.summaries), "target_value": target}  # fmt: skip
        reached = first_reaching(self.values, target, DIRECTION[self.metric]) if target is not None else None
        if reached is not None:
            fields.update(steps_to_target=int(self.steps[reached]), samples_to_target=int(self.samples[reached]),
                          train_s_to_target=self.train_s[reached])  # fmt: skip
        return fields


def first_reaching(values: list[float], target: float, direction: str) -> int | None:
    """Index of the first value at or beyond `target` in the better direction; None if none is."""
    for i, value in enumerate(values):
        if (value >= target) if direction == "higher" else (value <= target):
            return i
    return None
