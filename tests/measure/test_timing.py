"""Tests of bench.measure.timing: what the step timer records, the derived statistics, and throughput arithmetic."""

from __future__ import annotations

import time
import warnings

import pytest
import torch

from bench.measure import timing
from bench.results.schema import RunRecord
from bench.measure.timing import StepTimer, Throughput, TimingSummary, percentile, throughput


def test_throughput_is_total_work_over_total_time():
    # 3 steps of 8 samples x 16 padded positions, 300 real tokens, 2 s, 2 devices.
    result = throughput(samples=24, tokens_with_padding=384, real_tokens=300, total_seconds=2.0, n_devices=2)
    assert result == Throughput(
        samples_per_s=12.0,
        tokens_per_s=192.0,
        real_tokens_per_s=150.0,
        padding_fraction=pytest.approx(84 / 384),
        samples_per_s_per_device=6.0,
    )


def test_throughput_is_not_the_mean_of_per_step_rates():
    # 30 samples in 1 s, then 10 samples in 3 s: 40 samples / 4 s = 10/s, while the mean of
    # the per-step rates (30/s and 3.3/s) would claim 16.7/s.
    summary = TimingSummary(step_times_s=[1.0, 3.0])
    result = throughput(samples=40, tokens_with_padding=400, real_tokens=400, total_seconds=summary.measured_s)
    assert result.samples_per_s == 10.0
    assert result.padding_fraction == 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"total_seconds": 0.0}, "total_seconds"),
        ({"n_devices": 0}, "n_devices"),
        ({"real_tokens": 500}, "real_tokens"),
    ],
)
def test_throughput_rejects_impossible_inputs(kwargs, message):
    args = {"samples": 1, "tokens_with_padding": 10, "real_tokens": 5, "total_seconds": 1.0, "n_devices": 1} | kwargs
    with pytest.raises(ValueError, match=message):
        throughput(**args)


def test_percentile_interpolates_like_numpy():
    samples = [4.0, 1.0, 3.0, 2.0]
    assert percentile(samples, 50) == 2.5
    assert percentile(samples, 90) == pytest.approx(3.7)
    assert percentile(samples, 99) == pytest.approx(3.97)
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) is None


def test_summary_derives_statistics_from_raw_samples():
    summary = TimingSummary(step_times_s=[0.1, 0.1, 0.12, 0.1], phase_times_s={"forward": [0.05, 0.06], "data": []})
    assert summary.measured_steps == 4
    assert summary.measured_s == pytest.approx(0.42)
    assert summary.step_time_p50_s == pytest.approx(0.1)
    assert summary.phase_total_s("forward") == pytest.approx(0.11)
    assert summary.phase_total_s("data") is None


def test_wide_spread_warns():
    with pytest.warns(UserWarning, match="spread"):
        TimingSummary(step_times_s=[1.0] * 8 + [3.0] * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TimingSummary(step_times_s=[1.0, 1.1, 1.2])


def test_timer_skips_warmup_steps_and_splits_phases():
    timer = StepTimer("cpu")
    for step in range(5):
        with timer.step(measured=step >= 2):
            with timer.phase("data"):
                time.sleep(0.002)
            with timer.phase("forward"):
                time.sleep(0.004)
    summary = timer.summary()
    assert summary.method == "perf_counter"
    assert summary.measured_steps == 3
    assert len(summary.phase_times_s["data"]) == 3 and len(summary.phase_times_s["forward"]) == 3
    assert summary.phase_times_s["backward"] == []
    for total, data, forward in zip(summary.step_times_s, summary.phase_times_s["data"], summary.phase_times_s["forward"]):
        assert data >= 0.002 and forward >= 0.004
        assert total >= data + forward


def test_unknown_phase_is_named_in_the_error():
    with pytest.raises(ValueError, match="'loss'"):
        StepTimer().phase("loss")


def test_record_fields_are_schema_columns():
    summary = TimingSummary(step_times_s=[0.1, 0.2], phase_times_s={name: [0.01, 0.02] for name in timing.PHASES})
    record = RunRecord(run_id="r", config_hash="h")
    record.update(**summary.record_fields())
    assert record.phase_optimizer_s == pytest.approx(0.03)
    assert record.timing_method == "perf_counter"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_events_time_device_work():
    timer = StepTimer("cuda")
    x = torch.randn(2048, 2048, device="cuda")
    for step in range(3):
        with timer.step(measured=step > 0):
            with timer.phase("forward"):
                x @ x
    summary = timer.summary()
    assert summary.method == "cuda_event"
    assert summary.measured_steps == 2
    assert all(t > 0 for t in summary.phase_times_s["forward"])
