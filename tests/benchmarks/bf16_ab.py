"""bf16 against fp32 on this CPU, interleaved in one process: training steps, evaluation encoding, and what
bf16 evaluation does to mAP.

    python tests/benchmarks/bf16_ab.py --rounds 10 --steps 2 --texts 384 --out results/benchmarks/bf16_ab.json \
        --parity-out results/benchmarks/bf16_eval_parity.json

Training: two copies of the same model (same initial weights) train on the same batches, one step
under accelerate's bf16 autocast and one in fp32, alternating round by round in a shuffled order so
drift of the machine spreads over both; the ratio fp32 / bf16 of each round's seconds per step is the
speed-up (its median and interquartile range are printed). Encoding: the same texts encoded with
eval.precision fp32 and bf16, alternating the same way. Evaluation parity (--parity-out FILE): one fixed
encoder (the pretrained model as it is) evaluated on the held-out set in both precisions; |delta mAP| on
mono / cross / multi, written to its own file, so each file's recorded command names it. Training parity
(bf16 against fp32 trained runs) is a sweep of its own (conf/experiment/bf16-parity.yaml). Each output
has a provenance sidecar (`<file>.provenance.json`: commit, tree state, CPU and its flags, calibration
measured before the timings, the exact command).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from accelerate import Accelerator  # noqa: E402

from bench.config import plan_runs  # noqa: E402
from bench.evaluation.retrieval import evaluate  # noqa: E402
from bench.evaluation.sets import heldout_set  # noqa: E402
from bench.measure.evidence import command_line, evidence_header, write_evidence  # noqa: E402
from bench.measure.timing import StepTimer  # noqa: E402
from bench.stages import build_objective, build_optimizer, evaluation_encoder, make_collate, plan_batches, prepare_data  # noqa: E402
from bench.training.loop import train_step  # noqa: E402

DEFAULTS = ["model=me5-small", "model.freeze_embeddings=true", "model.trim_vocabulary=true", "strategy=hybrid", "languages=8",
            "eval=none", "train.budget=fixed", "train.batch_size=32", "train.max_length=64", "train.lr=2e-5"]  # fmt: skip


def quartiles(values: list[float]) -> dict:
    q = statistics.quantiles(values, n=4)
    return {"median": round(statistics.median(values), 4), "q1": round(q[0], 4), "q3": round(q[2], 4), "n": len(values)}


def interleave(trials: dict, rounds: int, seed: int = 0) -> dict[str, list[float]]:
    """Each trial once per round, in a shuffled order; its seconds per round (after one warm-up call each)."""
    for run in trials.values():
        run()
    seconds: dict[str, list[float]] = {name: [] for name in trials}
    order, rng = list(trials), random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            started = time.perf_counter()
            trials[name]()
            seconds[name].append(time.perf_counter() - started)
    return seconds


class Float32:
    """What train_step asks of an Accelerator, with no autocast: the fp32 arm."""

    @staticmethod
    def autocast():
        return contextlib.nullcontext()

    @staticmethod
    def backward(loss: torch.Tensor) -> None:
        loss.backward()


def training_ab(cfg, prepared, rounds: int, steps: int) -> dict:
    plan = plan_batches(cfg, prepared.pairs)
    collate = make_collate(cfg, prepared)
    batches = [collate(step, refs) for step, refs in enumerate(plan[:steps])]
    fp32 = build_objective(cfg, prepared)
    bf16 = copy.deepcopy(fp32)
    # accelerate's state is one per process, so the fp32 arm gets the same calls without autocast.
    arms = {"fp32": (fp32, build_optimizer(cfg, fp32), Float32()),
            "bf16": (bf16, build_optimizer(cfg, bf16), Accelerator(cpu=True, mixed_precision="bf16"))}  # fmt: skip

    def trial(name: str):
        objective, optimizer, accelerator = arms[name]
        timer = StepTimer(torch.device("cpu"))

        def run() -> None:
            objective.train()
            for batch in batches:
                with timer.step(measured=False):
                    train_step(objective, optimizer, accelerator, batch, timer)

        return run

    seconds = interleave({name: trial(name) for name in arms}, rounds)
    ratios = [a / b for a, b in zip(seconds["fp32"], seconds["bf16"])]
    return {"fp32_s_per_step": quartiles([s / steps for s in seconds["fp32"]]),
            "bf16_s_per_step": quartiles([s / steps for s in seconds["bf16"]]),
            "speedup_fp32_over_bf16": quartiles(ratios), "steps_per_round": steps, "rounds": rounds}  # fmt: skip


def encoding_ab(cfg, rounds: int, n_texts: int) -> tuple[dict, dict]:
    """Encoding speed fp32 / bf16 on the held-out questions, and mAP of one fixed encoder both ways."""
    from bench.stages import zero_shot_encoder

    heldout = heldout_set(cfg.eval, cfg.data)
    texts = [q.text for part in heldout.dataset.by_lang.values() for q in part.questions][:n_texts]
    encoders = {}
    for precision in ("fp32", "bf16"):
        encoder = zero_shot_encoder(cfg)
        encoder.precision = precision
        encoders[precision] = encoder
    seconds = interleave({p: (lambda e=e: e.encode(texts, cfg.eval.batch_size, kind="query")) for p, e in encoders.items()}, rounds)
    speed = {"texts": len(texts), "fp32_s": quartiles(seconds["fp32"]), "bf16_s": quartiles(seconds["bf16"]),
             "speedup_fp32_over_bf16": quartiles([a / b for a, b in zip(seconds["fp32"], seconds["bf16"])])}  # fmt: skip
    return speed, encoders


def eval_parity(cfg, encoders: dict) -> dict:
    heldout = heldout_set(cfg.eval, cfg.data)
    summaries = {p: evaluate(e, [heldout], batch_size=cfg.eval.batch_size).summaries[heldout.name] for p, e in encoders.items()}
    metrics = ("map_mono", "map_cross", "map_multi", "rank_distance")
    return {"set": heldout.name, **{p: {m: round(summaries[p][m], 6) for m in metrics} for p in summaries},
            "abs_delta": {m: round(abs(summaries["bf16"][m] - summaries["fp32"][m]), 6) for m in metrics}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="run overrides after the defaults (model=..., train.batch_size=...)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=3, help="training steps per arm per round")
    parser.add_argument("--texts", type=int, default=512, help="texts encoded per arm per round")
    parser.add_argument("--out", type=Path, help="write the timings as JSON here (and its provenance sidecar)")
    parser.add_argument("--parity-out", type=Path,
                        help="also evaluate one fixed encoder in both precisions; write that here (and its sidecar)")
    args = parser.parse_args()
    (planned,) = plan_runs("config", [*DEFAULTS, f"train.steps={args.steps}", *args.overrides], sweep=False)
    cfg = planned.config
    torch.set_num_threads(cfg.train.threads)
    header = evidence_header(command_line(), cfg.train.threads)  # calibrated before anything is timed
    print(json.dumps(header, indent=1), flush=True)
    prepared = prepare_data(cfg)
    settings = {"model": cfg.model.name, "languages": len(cfg.languages), "batch_size": cfg.train.batch_size,
                "max_length": cfg.train.max_length, "threads": cfg.train.threads,
                "frozen_embeddings": cfg.model.freeze_embeddings, "trimmed": cfg.model.trim_vocabulary}  # fmt: skip
    timings = {"settings": settings, "training": training_ab(cfg, prepared, args.rounds, args.steps)}
    print("training:", json.dumps(timings["training"]), flush=True)
    eval_cfg = plan_runs("config", [*DEFAULTS, "eval=default", "eval.max_length=64", *args.overrides], sweep=False)[0].config
    timings["encoding"], encoders = encoding_ab(eval_cfg, args.rounds, args.texts)
    print("encoding:", json.dumps(timings["encoding"]), flush=True)
    write_json(args.out, timings, header)
    if args.parity_out:
        parity = {"settings": settings, "eval_parity": eval_parity(eval_cfg, encoders)}
        print("eval parity:", json.dumps(parity["eval_parity"]), flush=True)
        write_json(args.parity_out, parity, header)


def write_json(path: Path | None, payload: dict, header: dict) -> None:
    if path is not None:
        write_evidence(path, json.dumps(payload, indent=1) + "\n", header)
        print(f"wrote {path} and its provenance")


if __name__ == "__main__":
    main()
