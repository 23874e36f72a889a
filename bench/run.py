"""One run, measured: data -> tokenizer -> sampler -> model -> objective -> profiled training -> evaluation -> one row.

    python -m bench.run strategy=hybrid languages=4          # one configuration, in this process
    python -m bench.run --config-file results/x/configs/ID.json   # what launchers start (bench.launch)

The row goes to `results.dir/runs/<run_id>.parquet` whatever happens: a failure is a row, not a
lost result. Sweeps start every run as its own process through `bench.launch`, so no run inherits
memory, caches or thread state from another; `train.devices>1` starts the ranks the same way. A
single-device `python -m bench.run` measures in its own process without a launcher, because that
process already is the fresh one a launcher would start: a child would add only a second start-up.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import pandas as pd
import torch
from accelerate import Accelerator

from bench.config import RunConfig, plan_runs
from bench.errors import exit_on_user_error, one_line
from bench.evaluation.retrieval import evaluate
from bench.launch import PARENT_PID_ENV, die_with_parent, launch_run, read_config, results_lock
from bench.measure.hardware import bf16_support
from bench.measure.memory import peak_rss_bytes
from bench.measure.profiler import RunProfiler, WorkCounter, provenance_fields
from bench.models.encoder import count_parameters
from bench.predict import predict_row
from bench.results.schema import SUCCESS, RunRecord
from bench.results.store import ensure_writable_dir, read_run, write_run
from bench.stages import (
    RunPipeline, build_objective, build_optimizer, build_scheduler, describe, evaluation_encoder, quality_curve, resolve_device,
    unk_fields,
)  # fmt: skip
from bench.strategies.sampling import BatchStats
from bench.training.distributed import all_gather_numbers, all_sum, is_main_rank, shard_batch
from bench.training.loop import StepRoles, train


def execute(cfg: RunConfig, record: RunRecord) -> tuple[RunRecord, pd.DataFrame | None, pd.DataFrame | None]:
    """Train and evaluate one configuration, filling `record` as each stage completes."""
    torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.device)
    accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision=cfg.train.mixed_precision)
    world, rank = accelerator.num_processes, accelerator.process_index
    profiler = RunProfiler(accelerator.device, cfg.train.mixed_precision, cfg.profiler.contention_threshold)
    record.update(device_type=device.type, n_devices=world, gather_negatives=world > 1 and cfg.train.gather_negatives,
                  bf16_support=bf16_support(device.type), **provenance_fields(accelerator.device))  # fmt: skip
    warn_if_emulated_bf16(cfg, record.bf16_support)

    pipeline = RunPipeline(cfg, profiler)
    prepared, eval_sets, plan = pipeline.prepared, pipeline.eval_sets, pipeline.plan
    record.update(vocab_size=prepared.tokenizer.vocab_size, tokenizer_name=prepared.tokenizer.name,
                  **unk_fields(prepared.tokenizer, eval_sets))  # fmt: skip
    stats = BatchStats.of(plan)
    record.update(mono_batch_fraction=stats.mono_batch_fraction, cross_pair_fraction=stats.cross_pair_fraction,
                  languages_seen=",".join(stats.languages_seen))  # fmt: skip
    local_plan = [shard_batch(batch, rank, world) for batch in plan]
    if cfg.profiler.dump_batches:
        dump_batches(Path(cfg.results.dir), cfg.run_id, rank, local_plan, prepared.pairs)
    with profiler.stage("model_build"):
        objective = build_objective(cfg, prepared)
        optimizer = build_optimizer(cfg, objective)
        scheduler = build_scheduler(cfg, optimizer)
        record.update(**model_fields(cfg, objective))
        objective, optimizer = accelerator.prepare(objective, optimizer)
    encoder = accelerator.unwrap_model(objective).encoder
    pooling = cfg.strategy.evaluation_pooling(cfg.model.pooling)
    text_encoder = evaluation_encoder(cfg, encoder, prepared.tokenizer, pooling)
    curve = quality_curve(cfg, profiler)

    def after_step(step: int) -> None:
        if curve is not None and curve.due(step):
            with profiler.excluded("curve_eval"):
                curve.measure(step, text_encoder)

    roles = StepRoles(cfg.train.warmup_steps, pipeline.probed_step)  # global: every rank probes the same step
    with profiler.training_window():
        outcome = train(objective, optimizer, local_plan, pipeline.collate, accelerator, roles,
                        cfg.profiler.track_memory, cfg.profiler.count_flops, scheduler, after_step,
                        length_cap=cfg.train.max_length)  # fmt: skip
    record.update(loss_curve=outcome.losses, final_loss=outcome.losses[-1] if outcome.losses else None)
    record.update(**profiler.training_fields(outcome.timing, outcome.probe, world, record.device_name, global_work(outcome.work)))
    record.update(**gather_memory_fields(profiler.memory_fields(outcome.probe)))
    if curve is not None:
        record.update(**curve.record_fields(cfg.eval.curve.target))

    per_setting = per_query = None
    if cfg.results.save_encoder and accelerator.is_main_process:
        text_encoder.save(Path(cfg.results.dir) / "encoders" / cfg.run_id)
    if eval_sets and accelerator.is_main_process:
        with profiler.stage("eval"):
            result = evaluate(text_encoder, eval_sets, cfg.languages, cfg.eval.batch_size, cfg.eval.query_chunk,
                              per_query=cfg.results.per_query)  # fmt: skip
        record.update(**result.summary)
        per_setting, per_query = result.table, result.per_query
    accelerator.wait_for_everyone()
    record.update(**profiler.stage_fields())
    return record, per_setting, per_query


def warn_if_emulated_bf16(cfg: RunConfig, support: str) -> None:
    """bf16 asked for where the processor emulates it: allowed (and recorded), but said, since it is slower."""
    if support == "emulated" and "bf16" in (cfg.train.mixed_precision, cfg.eval.precision):
        print(f"warning: bf16 requested but this {cfg.device} device has no native bf16 (no AMX or AVX-512 BF16): "
              "it is emulated and slower than fp32; train.mixed_precision=auto and eval.precision=auto pick fp32 here",
              file=sys.stderr, flush=True)  # fmt: skip


def model_fields(cfg: RunConfig, objective: torch.nn.Module) -> dict:
    encoder = objective.encoder
    return {"model_params": count_parameters(encoder), "trainable_params": count_parameters(objective, trainable=True),
            "embedding_rows": encoder.get_input_embeddings().num_embeddings, "vocabulary_trimmed": cfg.model.trim_vocabulary,
            "embeddings_frozen": cfg.model.freeze_embeddings, **objective.record_fields()}  # fmt: skip


def global_work(work: WorkCounter) -> WorkCounter:
    """Samples and tokens over all ranks: the numerators of global throughput."""
    return WorkCounter(*all_sum([work.samples, work.padded_tokens, work.real_tokens, work.steps, work.masked_tokens,
                                 work.steps_at_length_cap]))


def gather_memory_fields(local: dict) -> dict:
    """Per-rank peaks, and the run's figures taken from the rank with the largest tensor peak."""
    tensor_peaks = all_gather_numbers(local.get("peak_tensor_bytes"))
    rss_peaks = all_gather_numbers(local.get("peak_rss_bytes"))
    all_fields = all_gather_numbers(local)
    worst = max(range(len(all_fields)), key=lambda r: tensor_peaks[r] or 0)
    fields = dict(all_fields[worst])
    fields["peak_rss_bytes"] = max((r for r in rss_peaks if r is not None), default=None)
    fields["rank_peak_tensor_bytes"] = [float(v) for v in tensor_peaks if v is not None]
    fields["rank_peak_rss_bytes"] = [float(v) for v in rss_peaks if v is not None]
    return fields


def dump_batches(results_dir: Path, rid: str, rank: int, local_plan, pairs) -> None:
    """Write this rank's batches (group ids and languages) for inspection and the multi-device test."""
    path = results_dir / "batches" / f"{rid}-rank{rank}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [[[pairs.index.groups[r.group], r.query_lang, r.passage_lang] for r in batch] for batch in local_plan]
    path.write_text(json.dumps(rows))


def reached(started: float) -> dict:
    """How far a failed or interrupted run got: its time and its host memory high-water mark."""
    return {"wall_s": time.perf_counter() - started, "peak_rss_bytes": peak_rss_bytes(include_children=False)}


def predict(cfg: RunConfig, record: RunRecord) -> tuple[RunRecord, None, None]:
    """mode=predict: the same pipeline, its probed step replayed on fake tensors; no quality tables."""
    return predict_row(cfg, record), None, None


SCENARIOS = {"train": execute, "predict": predict}  # mode=<name>: two scenarios over one RunPipeline (bench.stages)


def run_and_record(cfg: RunConfig, command: str | None = None) -> RunRecord:
    """Execute one run (measured, or predicted with mode=predict) and persist its row, whatever happens."""
    results_dir = ensure_writable_dir(Path(cfg.results.dir))
    record = describe(cfg, command)
    per_setting = per_query = None
    started = time.perf_counter()
    try:
        record, per_setting, per_query = SCENARIOS[cfg.mode](cfg, record)
    except KeyboardInterrupt:
        record.update(status="interrupted", error_type="KeyboardInterrupt", error_message="interrupted by signal",
                      **reached(started))  # fmt: skip
        if is_main_rank():
            write_run(results_dir, record)
        raise
    except Exception as exc:  # the row records the failure; the log keeps the traceback
        status = "oom" if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower() else "failed"
        record.update(status=status, error_type=type(exc).__name__, error_message=one_line(exc)[:2000], **reached(started))
        log = results_dir / "logs" / f"{record.run_id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
    if is_main_rank():  # one row per run
        write_run(results_dir, record, per_setting, per_query)
    return record


def summary_line(record: RunRecord) -> str:
    if record.status == "predicted":
        return f"{record.run_id}: predicted peak tensor memory {record.peak_tensor_bytes:,} B (step {record.tracked_step})"
    if record.status != "ok":
        return f"{record.run_id}: {record.status} ({record.error_type}: {record.error_message})"
    quality = f", multi mAP {record.eval_heldout_map_multi:.3f}" if record.eval_heldout_map_multi is not None else ""
    return (
        f"{record.run_id}: ok in {record.wall_s:.1f}s, {record.samples_per_s:.1f} samples/s, "
        f"peak tensor {record.peak_tensor_bytes or 0:,} B, RSS {record.peak_rss_bytes or 0:,} B{quality}"
    )


def _interrupt_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt  # handled like Ctrl-C: the row is written as "interrupted"


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--config-file"]:  # started by bench.launch: the config was validated by the launcher
        die_with_parent()
        cfg, command = read_config(Path(argv[1])), None
    else:
        (planned,) = plan_runs("config", argv, sweep=False)
        cfg, command = planned.config, "python -m bench.run " + " ".join(argv)
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    with results_lock(Path(cfg.results.dir)):
        if cfg.train.devices > 1 and PARENT_PID_ENV not in os.environ:  # start the ranks, the one way runs start
            launch_run(cfg)
            record = read_run(Path(cfg.results.dir), cfg.run_id)
        else:
            record = run_and_record(cfg, command)
    if is_main_rank() and record is not None:
        print(summary_line(record))
    return 0 if record is not None and record.status in SUCCESS else 1


if __name__ == "__main__":
    sys.exit(main())
