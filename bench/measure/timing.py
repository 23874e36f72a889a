"""The one timing primitive: per-step wall time and its split into phases, and throughput from totals.

`StepTimer` marks the boundaries of each measured step and of its phases (`data`, `forward`,
`backward`, `optimizer`). On CPU a mark is `time.perf_counter()`; on CUDA it is a recorded
`torch.cuda.Event(enable_timing=True)`, and the events are synchronised only when the
samples are read, so timing never adds a host-device sync to a step. On CUDA every figure
is the stream's time between marks: a CPU-only phase such as `data` shows as the work the
GPU did (or the gap it waited) meanwhile.

`TimingSummary` keeps the raw samples and derives statistics from them (like
`torch.utils.benchmark.Measurement`), warning when the spread is large. `throughput` divides
total work by total measured time, never by the mean step time.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import psutil
import torch

PHASES = ("data", "forward", "backward", "optimizer")
SPREAD_WARNING_RATIO = 1.5  # p90/p50 above this: the machine was busy or the steps differ in size


class _Clock:
    """Marks on the host clock; the CUDA clock below has the same two methods."""

    method = "perf_counter"

    def mark(self) -> Any:
        return time.perf_counter()

    def seconds(self, start: Any, end: Any) -> float:
        return end - start


class _CudaClock:
    method = "cuda_event"

    def mark(self) -> Any:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def seconds(self, start: Any, end: Any) -> float:
        end.synchronize()  # only when samples are read, after the measured steps
        return start.elapsed_time(end) / 1000.0  # elapsed_time is in milliseconds


class _Span:
    """One `with` block: marks on entry and exit, appended to the timer's list of pairs."""

    __slots__ = ("_clock", "_pairs", "_start")

    def __init__(self, clock: _Clock | _CudaClock, pairs: list[tuple[Any, Any]]) -> None:
        self._clock, self._pairs = clock, pairs

    def __enter__(self) -> None:
        self._start = self._clock.mark()

    def __exit__(self, *exc: Any) -> None:
        self._pairs.append((self._start, self._clock.mark()))


class _NoSpan:
    """What warm-up steps and their phases get: no marks at all."""

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: Any) -> None:
        pass


_NO_SPAN = _NoSpan()


class StepTimer:
    """Times measured steps and their phases; the caller says which steps are measured.

    Usage::

        timer = StepTimer(device)
        for step in range(steps):
            with timer.step(measured=step >= warmup_steps):
                with timer.phase("data"):
                    batch = next(batches)
                with timer.phase("forward"):
                    loss = model(**batch)
                ...
        summary = timer.summary()
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self._clock = _CudaClock() if torch.device(device).type == "cuda" else _Clock()
        self._steps: list[tuple[Any, Any]] = []
        self._phases: dict[str, list[tuple[Any, Any]]] = {name: [] for name in PHASES}
        self._measuring = False

    @property
    def method(self) -> str:
        """How time was taken: "perf_counter" or "cuda_event" (the `timing_method` column)."""
        return self._clock.method

    def step(self, measured: bool = True) -> _Span | _NoSpan:
        """Context manager around one whole step; warm-up steps pass measured=False."""
        self._measuring = measured
        return _Span(self._clock, self._steps) if measured else _NO_SPAN

    def phase(self, name: str) -> _Span | _NoSpan:
        """Context manager around one phase of the current step."""
        if name not in self._phases:
            raise ValueError(f"phase must be one of {', '.join(PHASES)}, got {name!r}")
        return _Span(self._clock, self._phases[name]) if self._measuring else _NO_SPAN

    def summary(self) -> TimingSummary:
        """Read every mark (the only synchronisation on CUDA) into a typed summary."""
        seconds = self._clock.seconds
        return TimingSummary(
            step_times_s=[seconds(a, b) for a, b in self._steps],
            phase_times_s={name: [seconds(a, b) for a, b in pairs] for name, pairs in self._phases.items()},
            method=self.method,
        )


@dataclass(frozen=True)
class TimingSummary:
    """Raw per-step and per-phase samples of the measured steps, with statistics derived from them."""

    step_times_s: list[float]
    phase_times_s: dict[str, list[float]] = field(default_factory=dict)
    method: str = "perf_counter"

    def __post_init__(self) -> None:
        if self.step_time_p50_s and self.step_time_p90_s / self.step_time_p50_s > SPREAD_WARNING_RATIO:
            warnings.warn(
                f"step times spread widely (p90/p50 = {self.step_time_p90_s / self.step_time_p50_s:.2f} over "
                f"{self.measured_steps} steps): the machine may have been busy, or the steps differ in size",
                stacklevel=3,
            )

    @property
    def measured_steps(self) -> int:
        return len(self.step_times_s)

    @property
    def measured_s(self) -> float:
        """Total measured time: the denominator of every throughput."""
        return math.fsum(self.step_times_s)

    @property
    def step_time_p50_s(self) -> float | None:
        return percentile(self.step_times_s, 50)

    @property
    def step_time_p90_s(self) -> float | None:
        return percentile(self.step_times_s, 90)

    @property
    def step_time_p99_s(self) -> float | None:
        return percentile(self.step_times_s, 99)

    def phase_total_s(self, name: str) -> float | None:
        """Total time of one phase over the measured steps; None if it was never timed."""
        samples = self.phase_times_s.get(name)
        return math.fsum(samples) if samples else None

    def record_fields(self) -> dict[str, Any]:
        """The timing columns of `bench.results.schema.RunRecord`, by name."""
        fields: dict[str, Any] = {
            "measured_steps": self.measured_steps,
            "measured_s": self.measured_s,
            "step_times_s": list(self.step_times_s),
            "step_time_p50_s": self.step_time_p50_s,
            "step_time_p90_s": self.step_time_p90_s,
            "step_time_p99_s": self.step_time_p99_s,
            "timing_method": self.method,
        }
        fields.update({f"phase_{name}_s": self.phase_total_s(name) for name in PHASES})
        return fields


def percentile(samples: list[float], q: float) -> float | None:
    """The q-th percentile with linear interpolation between order statistics (numpy's default)."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Throughput:
    """Work per second over the whole measured window."""

    samples_per_s: float
    tokens_per_s: float  # padding included: what the model computed on
    real_tokens_per_s: float  # padding excluded: what the data contained
    padding_fraction: float | None  # None when no tokens were processed
    samples_per_s_per_device: float


def throughput(samples: int, tokens_with_padding: int, real_tokens: int, total_seconds: float,
               n_devices: int = 1) -> Throughput:  # fmt: skip
    """Total work divided by total measured time (not by the mean step time, which weights steps equally)."""
    if total_seconds <= 0:
        raise ValueError(f"total_seconds must be positive, got {total_seconds}")
    if n_devices < 1:
        raise ValueError(f"n_devices must be at least 1, got {n_devices}")
    if not 0 <= real_tokens <= tokens_with_padding:
        raise ValueError(f"real_tokens ({real_tokens}) must be between 0 and tokens_with_padding ({tokens_with_padding})")
    samples_per_s = samples / total_seconds
    return Throughput(
        samples_per_s=samples_per_s,
        tokens_per_s=tokens_with_padding / total_seconds,
        real_tokens_per_s=real_tokens / total_seconds,
        padding_fraction=1.0 - real_tokens / tokens_with_padding if tokens_with_padding else None,
        samples_per_s_per_device=samples_per_s / n_devices,
    )


class PhaseClock:
    """Wall seconds per named phase of a longer job (a sweep: calibration, reference levels, runs, plots), and
    the seconds its process spent starting before the first phase (interpreter and imports)."""

    def __init__(self) -> None:
        self.phases_s: dict[str, float] = {}
        self.notes: dict = {}  # what the job learned on the way (a sweep: the end calibration and its drift)
        self.startup_s = process_age_s()
        self._start = time.perf_counter()

    @contextlib.contextmanager
    def phase(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases_s[name] = self.phases_s.get(name, 0.0) + time.perf_counter() - started

    def fields(self) -> dict:
        """sweeps.jsonl fields: each phase, the start-up, and the wall time since the clock started."""
        return {**self.notes, "startup_s": self.startup_s, "phases_s": {k: round(v, 3) for k, v in self.phases_s.items()},
                "wall_s": round(time.perf_counter() - self._start, 3)}  # fmt: skip


def process_age_s() -> float | None:
    """Seconds since this process started (what imports cost before any code of ours ran); None if unknown."""
    try:
        return round(time.time() - psutil.Process().create_time(), 3)
    except psutil.Error:
        return None
