"""The metric vocabulary: what every evaluated set's summary holds, which sets' summaries are columns of
every results row, and the one function that names such a column.

Evaluation fills the columns (`bench.evaluation.retrieval`), the results schema declares them and its
readers (figures, reports, comparisons) look them up; every one of them names a column with `eval_column`.
"""

from __future__ import annotations

EVAL_ROLES = ("heldout", "zeroshot")  # the run's held-out articles; the first zero-shot (external) set
EVAL_SUMMARY_METRICS = ("map_mono", "map_cross", "map_multi", "rank_distance", "ndcg10_multi", "r1_multi")
DIRECTION = {"map_mono": "higher", "map_cross": "higher", "map_multi": "higher", "rank_distance": "lower",
             "ndcg10_multi": "higher", "r1_multi": "higher"}  # which way is better, per summary metric  # fmt: skip
SET_FIELDS = ("set", "by_lang")  # per role besides the metrics: the set's name; per-language JSON (held-out only)


def eval_column(role: str, metric: str) -> str:
    """The results column of `metric` (a summary metric, or one of SET_FIELDS) for the set evaluated in `role`."""
    if role not in EVAL_ROLES:
        raise ValueError(f"evaluation role must be one of {', '.join(EVAL_ROLES)}, got {role!r}")
    if metric not in EVAL_SUMMARY_METRICS + SET_FIELDS:
        raise ValueError(f"summary metric must be one of {', '.join(EVAL_SUMMARY_METRICS + SET_FIELDS)}, got {metric!r}")
    return f"eval_{role}_{metric}"
