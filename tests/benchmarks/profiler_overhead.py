"""How much the profiler slows a training step: StepTimer (target <= 2%) and TensorMemoryTracker (informational).

A tiny BERT dual encoder trains on random token ids. Plain steps and steps wrapped in the
timer's step and phase blocks alternate in blocks within one process (ABBA order, so slow
drifts of a shared machine hit both equally), and every step is timed from outside the same
way. The overhead is the ratio of median step times and, robust to drift, the median ratio
of neighbouring steps; because a 2% effect is near the noise
of a busy machine, the timer's own cost per step is also measured directly on empty steps.
The memory tracker is compared the same way, though the harness tracks only one step per
run, outside the timed window.

    python tests/benchmarks/profiler_overhead.py --blocks 100 --steps-per-block 1 \
        --out results/benchmarks/profiler_overhead.txt

`--out` writes the printed lines and their provenance sidecar (`<file>.provenance.json`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch.nn import functional as F
from transformers import BertConfig, BertModel

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from a checkout, installed or not

from bench.measure.evidence import Transcript, command_line, evidence_header, write_evidence
from bench.measure.memory import TensorMemoryTracker
from bench.measure.timing import PHASES, StepTimer


class DualEncoder(torch.nn.Module):
    """Shared tiny BERT for queries and passages, InfoNCE over in-batch negatives on [CLS] states."""

    def __init__(self, vocab_size: int, hidden: int, layers: int) -> None:
        super().__init__()
        config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                            num_attention_heads=2, intermediate_size=4 * hidden, max_position_embeddings=512)  # fmt: skip
        self.encoder = BertModel(config, add_pooling_layer=False)

    def forward(self, queries: torch.Tensor, passages: torch.Tensor) -> torch.Tensor:
        q = F.normalize(self.encoder(input_ids=queries).last_hidden_state[:, 0], dim=-1)
        p = F.normalize(self.encoder(input_ids=passages).last_hidden_state[:, 0], dim=-1)
        return F.cross_entropy(q @ p.T / 0.05, torch.arange(q.shape[0]))


class Trainer:
    """One model, optimizer and batch generator; `step(timer)` runs one step, timed if a timer is given."""

    def __init__(self, args: argparse.Namespace) -> None:
        torch.manual_seed(args.seed)
        self.args = args
        self.model = DualEncoder(args.vocab_size, args.hidden, args.layers)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.generator = torch.Generator().manual_seed(args.seed)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.args.batch_size, self.args.length)
        return (torch.randint(0, self.args.vocab_size, shape, generator=self.generator),
                torch.randint(0, self.args.vocab_size, shape, generator=self.generator))  # fmt: skip

    def plain_step(self) -> None:
        loss = self.model(*self.batch())
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()

    def timed_step(self, timer: StepTimer) -> None:
        with timer.step():
            with timer.phase("data"):
                batch = self.batch()
            with timer.phase("forward"):
                loss = self.model(*batch)
            with timer.phase("backward"):
                loss.backward()
            with timer.phase("optimizer"):
                self.optimizer.step()
                self.optimizer.zero_grad()

    def tracked_step(self) -> None:
        with TensorMemoryTracker(self.model, self.optimizer):
            self.plain_step()


def interleave(variants: dict[str, Callable[[], None]], blocks: int, steps_per_block: int) -> dict[str, list[float]]:
    """Step times of each variant, run in alternating blocks (ABBA...), each step timed from outside."""
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for block in range(blocks):
        for name in names if block % 2 == 0 else reversed(names):
            for _ in range(steps_per_block):
                start = time.perf_counter()
                variants[name]()
                times[name].append(time.perf_counter() - start)
    return times


def timer_cost_per_step(repeats: int = 20_000) -> float:
    """Seconds the timer adds to one step with four phases, measured on empty steps."""
    timer = StepTimer("cpu")
    start = time.perf_counter()
    for _ in range(repeats):
        with timer.step():
            for name in PHASES:
                with timer.phase(name):
                    pass
    timed = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        pass
    return (timed - (time.perf_counter() - start)) / repeats


def report(label: str, times: dict[str, list[float]], base: str, other: str) -> str:
    """Ratio of medians, and the median of paired ratios (neighbouring steps, robust to drift)."""
    base_median, other_median = statistics.median(times[base]), statistics.median(times[other])
    paired = statistics.median(b / a for a, b in zip(times[base], times[other]))
    return (f"{label}: median step {base} {base_median * 1e3:.2f} ms, {other} {other_median * 1e3:.2f} ms; "
            f"ratio of medians {other_median / base_median:.4f}, median paired ratio {paired:.4f} "
            f"(n={len(times[base])} each)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=100)
    parser.add_argument("--steps-per-block", type=int, default=1)
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the results here (and their provenance sidecar)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    header = evidence_header(command_line(), args.threads)  # calibrated before anything is timed

    trainer = Trainer(args)
    timer = StepTimer("cpu")
    for _ in range(args.warmup_steps):
        trainer.plain_step()
    say = Transcript()
    say(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size}x{args.length}, "
        f"hidden {args.hidden}, {args.layers} layers, vocab {args.vocab_size}")  # fmt: skip

    timing = interleave({"plain": trainer.plain_step, "timed": lambda: trainer.timed_step(timer)},
                        args.blocks, args.steps_per_block)  # fmt: skip
    say(report("StepTimer", timing, "plain", "timed"))
    cost = timer_cost_per_step()
    say(f"StepTimer direct cost: {cost * 1e6:.2f} us per step with {len(PHASES)} phases "
        f"= {cost / statistics.median(timing['plain']) * 100:.3f}% of the median plain step")  # fmt: skip

    tracking = interleave({"plain": trainer.plain_step, "tracked": trainer.tracked_step},
                          max(2, args.blocks // 2), args.steps_per_block)  # fmt: skip
    say(report("TensorMemoryTracker", tracking, "plain", "tracked"))
    if args.out:
        write_evidence(args.out, say.text, header)


if __name__ == "__main__":
    main()
