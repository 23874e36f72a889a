"""The stages of a run: the probed step is the run's real peak, and the Pareto front that finds it."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from bench.measure.memory import TensorMemoryTracker
from bench.measure.timing import StepTimer
from bench.run import run_and_record
from bench.strategies import strategy_names
from bench.stages import build_objective, build_optimizer, make_collate, pareto_front, plan_batches, prepare_data
from bench.training.loop import train_step
from tests.conftest import compose, quick_run


pytestmark = pytest.mark.usefixtures("fresh_accelerator")


def test_pareto_front_keeps_undominated_driver_tuples_earliest_first():
    drivers = {1: (40, 10), 2: (50, 5), 3: (40, 10), 4: (30, 12), 5: (20, 3), 6: (50, 5)}
    assert pareto_front(drivers) == [1, 2, 4]  # (20, 3) is dominated; repeats keep their first step


@pytest.mark.parametrize("strategy", strategy_names())  # every registered strategy, a new one included
def test_the_probed_step_is_the_maximum_over_every_step(strategy, tmp_path):
    """Track every step of a short run for real: the run's peak_tensor_bytes is their maximum."""
    cfg = compose(f"strategy={strategy}", "languages=4", "eval=none", *quick_run(steps=10, batch_size=16, warmup=1, max_length=64),
                  f"results.dir={tmp_path}")  # fmt: skip
    record = run_and_record(cfg)
    assert record.status == "ok", record.error_message

    AcceleratorState._reset_state(reset_partial_state=True)
    prepared = prepare_data(cfg)
    plan, collate = plan_batches(cfg, prepared.pairs), make_collate(cfg, prepared)
    objective = build_objective(cfg, prepared)
    optimizer = build_optimizer(cfg, objective)
    accelerator = Accelerator(cpu=True)
    objective.train()
    peaks = {}
    for step, refs in enumerate(plan):
        batch = collate(step, refs)
        if step < cfg.train.warmup_steps:
            train_step(objective, optimizer, accelerator, batch, StepTimer(torch.device("cpu")))
            continue
        with TensorMemoryTracker(objective, optimizer) as tracker:
            train_step(objective, optimizer, accelerator, batch, StepTimer(torch.device("cpu")))
        peaks[step] = tracker.peak.total_bytes
    assert record.peak_tensor_bytes == max(peaks.values())
    assert peaks[record.tracked_step] == max(peaks.values())


def test_a_run_parses_each_data_file_once(tmp_path):
    """Training data, evaluation sets and the curve's subset come from the same files: each is parsed once,
    and the time it takes is in the row's data stage."""
    from bench.data import lareqa

    lareqa.parsed_file.cache_clear()
    lareqa.PARSES.clear()
    cfg = compose("languages=2", *quick_run(steps=4, batch_size=8, warmup=1), "eval.curve.every_steps=2", "eval.curve.articles=1",
                  f"results.dir={tmp_path}")  # fmt: skip
    record = run_and_record(cfg)
    assert record.status == "ok", record.error_message
    assert len(lareqa.PARSES) == len(cfg.data.files) == 11  # every language file of XQuAD-R was read...
    assert set(lareqa.PARSES.values()) == {1}  # ...once (before: 3 times each, plus once more per curve)
    assert record.data_s > 0


def test_a_predicted_row_records_its_stages_like_a_measured_one(tmp_path):
    """mode=predict goes through the same pipeline: its data and tokenizer stages are timed into the row."""
    cfg = compose("mode=predict", "languages=2", "eval=none", *quick_run(steps=4, batch_size=8, warmup=1), f"results.dir={tmp_path}")
    record = run_and_record(cfg)
    assert record.status == "predicted", record.error_message
    assert record.data_s > 0 and record.tokenizer_s > 0
    assert record.wall_s >= record.data_s + record.tokenizer_s


def test_every_mode_is_a_scenario_of_the_run():
    from bench.config.run_config import MODES
    from bench.run import SCENARIOS

    assert set(SCENARIOS) == set(MODES)


@pytest.mark.parametrize("strategy", ["mbert", "hybrid"])
def test_a_row_counts_masked_tokens_and_steps_at_the_length_cap(strategy, tmp_path):
    """Masked LM's output-layer work (masked tokens per step) and the share of steps whose widest text reached
    train.max_length come from the measured steps' own batches; a cap shorter than every text holds every step."""
    common = ["languages=2", "eval=none", "profiler.track_memory=false", f"results.dir={tmp_path}", f"strategy={strategy}"]
    capped = run_and_record(compose(*common, *quick_run(steps=4, batch_size=8, warmup=1, max_length=6)))
    loose = run_and_record(compose(*common, *quick_run(steps=4, batch_size=8, warmup=1, max_length=512)))
    assert capped.status == loose.status == "ok", capped.error_message or loose.error_message
    assert capped.length_cap_step_fraction == 1.0 and loose.length_cap_step_fraction == 0.0
    if strategy == "mbert":  # 15% of the non-special real tokens, at least one per step
        real_per_step = loose.real_tokens_per_s * loose.measured_s / loose.measured_steps
        assert 0 < loose.masked_tokens_per_step < 0.3 * real_per_step
    else:
        assert loose.masked_tokens_per_step is None
