"""The metric vocabulary: every column eval_column names is a results column, and nothing else is named."""

from __future__ import annotations

import dataclasses

import pytest

from bench.core.metric_names import DIRECTION, EVAL_ROLES, EVAL_SUMMARY_METRICS, eval_column
from bench.evaluation.retrieval import empty_summary
from bench.results.schema import METRIC, RunRecord


def test_every_named_column_is_a_results_column_and_every_eval_column_is_named():
    named = {eval_column(role, m) for role in EVAL_ROLES for m in (*EVAL_SUMMARY_METRICS, "set")} | {eval_column("heldout", "by_lang")}
    fields = {f.name for f in dataclasses.fields(RunRecord)}
    assert named <= fields
    assert {f for f in fields if f.startswith("eval_")} - named == {"eval_s", "eval_languages_seen", "eval_precision"}
    assert set(empty_summary()) == named | {"eval_languages_seen"}


def test_the_catalogue_takes_its_directions_from_the_vocabulary():
    assert set(DIRECTION) == set(EVAL_SUMMARY_METRICS)
    for role in EVAL_ROLES:
        for metric in EVAL_SUMMARY_METRICS:
            assert METRIC[eval_column(role, metric)].direction == DIRECTION[metric]


@pytest.mark.parametrize("role, metric", [("train", "map_multi"), ("heldout", "map"), ("table", "set")])
def test_unknown_roles_and_metrics_are_refused(role, metric):
    with pytest.raises(ValueError):
        eval_column(role, metric)
