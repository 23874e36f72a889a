"""Evaluation during training: points at the planned steps, its time outside train_s, cost to a target."""

from __future__ import annotations

import time

import pytest
import torch
from accelerate.state import AcceleratorState

from bench.evaluation.curve import first_reaching
from bench.measure.profiler import RunProfiler
from bench.run import run_and_record
from bench.training.loop import linear_schedule
from tests.conftest import compose, quick_run


def test_first_reaching_follows_the_metrics_direction():
    assert first_reaching([0.1, 0.3, 0.5, 0.4], 0.3, "higher") == 1
    assert first_reaching([0.1, 0.2], 0.3, "higher") is None
    assert first_reaching([300.0, 250.0, 90.0], 100.0, "lower") == 2


def test_excluded_time_is_a_stage_of_its_own_and_leaves_the_enclosing_one():
    profiler = RunProfiler(torch.device("cpu"))
    with profiler.stage("train"):
        time.sleep(0.05)
        with profiler.excluded("curve_eval"):
            time.sleep(0.3)
        time.sleep(0.05)
    fields = profiler.stage_fields()
    assert fields["curve_eval_s"] >= 0.3
    assert 0.1 <= fields["train_s"] < 0.25


def test_linear_schedule_warms_up_then_decays_to_zero():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = linear_schedule(optimizer, warmup_steps=3, total_steps=10)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert rates[3:] == sorted(rates[3:], reverse=True) and rates[-1] == pytest.approx(1 / 7)


@pytest.mark.slow
def test_a_run_records_its_curve_and_cost_to_target(tmp_path):
    AcceleratorState._reset_state(reset_partial_state=True)
    cfg = compose("strategy=crosslingual", "languages=2", *quick_run(steps=12, batch_size=8), "eval.languages=[en,de]",
                  "eval.curve.every_steps=5", "eval.curve.target=0.0", f"results.dir={tmp_path}")  # fmt: skip
    record = run_and_record(cfg)
    assert record.status == "ok", record.error_message
    assert list(record.curve_steps) == [5, 10, 12]  # every 5 steps and after the last
    assert list(record.curve_samples) == [40, 80, 96]
    assert list(record.curve_train_s) == sorted(record.curve_train_s) and record.curve_train_s[-1] <= record.train_s
    assert record.steps_to_target == 5 and record.train_s_to_target == record.curve_train_s[0]  # target 0: reached at once
    assert record.curve_eval_s > 0 and record.curve_set == "xquad-r-heldout[2 articles]"
    unreachable = run_and_record(compose(*[o for o in cfg_overrides(tmp_path)], "eval.curve.target=2.0"))
    assert unreachable.steps_to_target is None and unreachable.train_s_to_target is None  # missing, never zero


def cfg_overrides(tmp_path):
    return ["strategy=crosslingual", "languages=2", *quick_run(steps=6, batch_size=8), "eval.languages=[en]",
            "eval.curve.every_steps=3", f"results.dir={tmp_path}"]  # fmt: skip
