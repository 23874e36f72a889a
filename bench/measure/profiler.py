"""The profiler that wraps each run: wall-clock stages, energy, host and device memory, FLOPs, provenance.

It composes the primitives (`timing`, `memory`, `flops`, `energy`, `provenance`) into the
columns of one `RunRecord`; it measures nothing by itself that they do not. What the training loop
hands it are plain records defined here (`WorkCounter`, `StepProbe`) and the timer's `TimingSummary`,
so it knows nothing of training.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass

import torch

from bench.measure.contention import Snapshot, contention_fields
from bench.measure.energy import EnergyMeter
from bench.measure.flops import achieved_tflops_per_s, matmul_precision, mfu
from bench.measure.memory import MemoryPeak, cuda_memory_stats, nvml_used_bytes, peak_rss_bytes, reset_cuda_peak, reset_peak_rss
from bench.measure.provenance import collect_provenance
from bench.measure.timing import TimingSummary, throughput

STAGES = ("data", "tokenizer", "model_build", "train", "eval", "curve_eval")


@dataclass
class WorkCounter:
    """Samples and tokens processed in the measured steps (the numerators of throughput)."""

    samples: int = 0
    padded_tokens: int = 0
    real_tokens: int = 0
    steps: int = 0
    masked_tokens: int = 0  # masked LM: positions the loss predicts (its output layer's work)
    steps_at_length_cap: int = 0  # steps whose widest text was cut at (or is exactly) train.max_length

    def add(self, samples: int, padded_tokens: int, real_tokens: int, masked_tokens: int = 0, at_cap: bool = False) -> None:
        self.samples += samples
        self.padded_tokens += padded_tokens
        self.real_tokens += real_tokens
        self.steps += 1
        self.masked_tokens += masked_tokens
        self.steps_at_length_cap += int(at_cap)

    def fields(self) -> dict:
        """Per-step work columns: masked tokens per step (None without masking) and the length cap's share of steps,
        which says how much of a 'flat' memory curve the cap itself holds flat."""
        if self.steps == 0:
            return {}
        return {"masked_tokens_per_step": self.masked_tokens / self.steps if self.masked_tokens else None,
                "length_cap_step_fraction": self.steps_at_length_cap / self.steps}


@dataclass
class StepProbe:
    """What the probed step measured: its tensor memory peak, FLOPs and padded tokens."""

    step: int
    memory: MemoryPeak | None
    flops: int | None
    padded_tokens: int


class RunProfiler:
    """Accumulates one run's measurements; `stage_fields`, `memory_fields` and `training_fields` turn
    them into schema columns."""

    def __init__(self, device: torch.device, mixed_precision: str = "no", contention_threshold: float = 0.2) -> None:
        self.device = device
        self.mixed_precision = mixed_precision
        self.contention_threshold = contention_threshold
        self._machine_start = Snapshot.now()
        self.stage_s: dict[str, float] = {}
        self._open: dict[str, float] = {}  # stages running now: their start time
        self._excluded: dict[str, float] = {}  # time excluded from each running stage so far
        self.energy_j: float | None = None
        self.energy_method: str | None = None
        # A fresh process per run makes the high-water mark this run's own; the reset guards in-process reuse.
        self.rss_reset = reset_peak_rss()
        self._start = time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name: str):
        """Wall-clock time of one stage of the run (data, tokenizer, model_build, train, eval)."""
        if name not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {name!r}")
        self._open[name], self._excluded[name] = time.perf_counter(), 0.0
        try:
            yield
        finally:
            self.stage_s[name] = self.stage_s.get(name, 0.0) + self.running_s(name)
            del self._open[name], self._excluded[name]

    @contextlib.contextmanager
    def excluded(self, name: str):
        """A stage of its own inside running stages, whose time is taken out of theirs (evaluation
        during training never enters train_s)."""
        started = time.perf_counter()
        try:
            with self.stage(name):
                yield
        finally:
            for running in self._open:
                if running != name:
                    self._excluded[running] += time.perf_counter() - started

    def running_s(self, name: str) -> float:
        """Seconds so far in a running stage, minus what was excluded from it."""
        return time.perf_counter() - self._open[name] - self._excluded[name]

    @contextlib.contextmanager
    def training_window(self):
        """Energy and CUDA allocator peaks cover exactly the training loop."""
        reset_cuda_peak(self.device)
        meter = EnergyMeter(self.device)
        meter.start()
        try:
            with self.stage("train"):
                yield
        finally:
            self.energy_j, self.energy_method = meter.stop()

    def wall_s(self) -> float:
        return time.perf_counter() - self._start

    def stage_fields(self) -> dict:
        init = [self.stage_s.get(s) for s in ("data", "tokenizer", "model_build")]
        return contention_fields(self._machine_start, Snapshot.now(), self.contention_threshold) | {
            "wall_s": self.wall_s(),
            "data_s": self.stage_s.get("data"),
            "tokenizer_s": self.stage_s.get("tokenizer"),
            "model_build_s": self.stage_s.get("model_build"),
            "init_s": sum(s for s in init if s is not None),
            "train_s": self.stage_s.get("train"),
            "eval_s": self.stage_s.get("eval"),
            "curve_eval_s": self.stage_s.get("curve_eval"),
        }

    def memory_fields(self, probe: StepProbe | None) -> dict:
        # Batches are collated in this process (no loader workers), so its own high-water mark is the
        # run's peak; adding children would count short-lived helpers (git) that share our pages.
        fields: dict = {"peak_rss_bytes": peak_rss_bytes(include_children=False)}
        if probe and probe.memory:
            fields.update(
                tracked_step=probe.step,
                peak_tensor_bytes=probe.memory.total_bytes,
                peak_param_bytes=probe.memory.param_bytes,
                peak_grad_bytes=probe.memory.grad_bytes,
                peak_optimizer_bytes=probe.memory.optimizer_bytes,
                peak_activation_bytes=probe.memory.activation_bytes,
            )
        cuda = cuda_memory_stats(self.device)
        if cuda:
            fields.update(
                cuda_peak_allocated_bytes=cuda.peak_allocated_bytes,
                cuda_peak_reserved_bytes=cuda.peak_reserved_bytes,
                cuda_alloc_retries=cuda.alloc_retries,
                cuda_ooms=cuda.ooms,
                nvml_used_bytes=nvml_used_bytes(self.device),
            )
        return fields

    def training_fields(self, timing: TimingSummary, probe: StepProbe | None, n_devices: int, device_name: str | None,
                        work: WorkCounter) -> dict:  # fmt: skip
        """Timing samples, throughput over the measured window, FLOPs and energy.

        `work` is counted over all ranks, so rates are global; `_per_device` divides by `n_devices`.
        """
        fields = dict(timing.record_fields())
        fields.update(energy_j=self.energy_j, energy_method=self.energy_method, **work.fields())
        seconds = timing.measured_s
        if seconds > 0:
            rates = throughput(work.samples, work.padded_tokens, work.real_tokens, seconds, n_devices)
            fields.update(asdict(rates))
        if probe and probe.flops:
            fields["probed_step_flops"] = float(probe.flops)
            if seconds > 0 and probe.padded_tokens:
                # FLOPs scale with padded tokens; the probed batch gives the per-token rate for the window.
                window_flops = probe.flops / probe.padded_tokens * work.padded_tokens  # global tokens
                achieved = achieved_tflops_per_s(window_flops, seconds)
                fields["tflops_per_s_estimated"] = achieved
                per_device = achieved / n_devices
                fields["mfu_estimated"] = mfu(per_device, self.device.type, device_name, matmul_precision(self.mixed_precision))
        return fields


def provenance_fields(device: torch.device) -> dict:
    values = asdict(collect_provenance(device))
    values.pop("torch_threads")  # recorded as `threads`, set explicitly by the run
    return values
