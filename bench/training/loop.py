"""The training loop: a planned sequence of batches through `accelerate`, timed and memory-probed.

The loop is deliberately plain (collate, forward, backward, step). `StepRoles` decides what is
measured: warm-up steps run but are not timed; the one probed step (the step of the plan that
needs the most memory, chosen before training by `bench.stages.choose_probed_step`) runs under
the tensor memory tracker and the FLOP counter and is excluded from timing, so neither
instrument perturbs the step-time statistics. What the loop measured goes to the profiler as
plain records (`bench.measure.profiler.WorkCounter`, `StepProbe`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
from accelerate import Accelerator

from bench.core.pairs import PairBatch
from bench.data.collate import Batch
from bench.measure.flops import count_flops
from bench.measure.memory import TensorMemoryTracker
from bench.measure.profiler import StepProbe, WorkCounter
from bench.measure.timing import StepTimer, TimingSummary

Collate = Callable[[int, PairBatch], Batch]


@dataclass(frozen=True)
class StepRoles:
    """Which steps are timed and which one is probed for memory and FLOPs."""

    warmup_steps: int
    probed_step: int | None

    def measured(self, step: int) -> bool:
        return step >= self.warmup_steps and step != self.probed_step


@dataclass
class TrainingOutcome:
    """What a training loop leaves: raw timing samples, work counted over the measured steps, losses, the probe."""

    timing: TimingSummary
    work: WorkCounter
    losses: list[float]
    probe: StepProbe | None


def linear_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 over `warmup_steps`, then linear decay to 0 at the last step (BERT's schedule)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def warmup_constant_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup_steps` (as `linear_schedule` warms up), then the full rate to the end:
    a budget whose rate is never spent, so a learning curve shows the strategy, not the decay."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / (warmup_steps + 1)))


def train_step(objective, optimizer, accelerator: Accelerator, batch: Batch, timer: StepTimer) -> torch.Tensor:
    with timer.phase("forward"), accelerator.autocast():
        loss = objective(**batch.inputs)
    with timer.phase("backward"):
        accelerator.backward(loss)
    with timer.phase("optimizer"):
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def probe_step(objective, optimizer, accelerator: Accelerator, batch: Batch, timer: StepTimer, memory: bool, flops: bool):
    """One untimed step under the tensor tracker (and FLOP counter); returns (loss, peak, flops)."""
    # The tracker hooks the torch optimizer itself, not accelerate's wrapper around it.
    tracker = TensorMemoryTracker(objective, getattr(optimizer, "optimizer", optimizer)) if memory else None
    result: dict[str, torch.Tensor] = {}

    def step() -> None:
        result["loss"] = train_step(objective, optimizer, accelerator, batch, timer)

    with tracker if tracker is not None else contextlib.nullcontext():
        n_flops = count_flops(step) if flops else step()
    return result["loss"], (tracker.peak if tracker else None), n_flops


def train(
    objective: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    plan: list[PairBatch],
    collate: Collate,
    accelerator: Accelerator,
    roles: StepRoles,
    track_memory: bool = True,
    count_step_flops: bool = True,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    after_step: Callable[[int], None] | None = None,
    length_cap: int | None = None,
) -> TrainingOutcome:
    """Run every planned step; return raw timing samples, work counts, losses and the probe.

    `after_step(step)` runs between steps, outside every timed step (periodic evaluation)."""
    timer = StepTimer(accelerator.device)
    work = WorkCounter()
    losses: list[torch.Tensor] = []
    probe = None
    objective.train()
    for step, refs in enumerate(plan):
        measured = roles.measured(step)
        with timer.step(measured=measured):
            with timer.phase("data"):
                batch = collate(step, refs).to(accelerator.device)
            if step == roles.probed_step and (track_memory or count_step_flops):
                loss, peak, flops = probe_step(objective, optimizer, accelerator, batch, timer, track_memory, count_step_flops)
                probe = StepProbe(step, peak, flops, batch.padded_tokens)
            else:
                loss = train_step(objective, optimizer, accelerator, batch, timer)
            if scheduler is not None:
                scheduler.step()
        losses.append(loss)  # kept on device: .item() here would sync the device every step
        if measured:
            at_cap = length_cap is not None and batch.width >= length_cap
            work.add(batch.n_samples, batch.padded_tokens, batch.real_tokens, batch.masked_tokens or 0, at_cap)
        if after_step is not None:
            after_step(step)
    curve = torch.stack(losses).float().cpu().tolist() if losses else []
    return TrainingOutcome(timer.summary(), work, curve, probe)
