"""One run: data -> tokenizer -> sampler -> model -> objective -> profiled training -> evaluation -> one row.

`python -m bench.run strategy=hybrid languages=4` runs a single configuration in this process
and writes its row to `results.dir/runs/`. The sweep starts each of its runs this way, in a
fresh process, so no run inherits memory, caches or thread state from the one before.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
from accelerate import Accelerator
from tokenizers import Tokenizer

from bench.collate import SpecialIds, TokenizedPairs, collate_contrastive, collate_masked_lm, padded_volume
from bench.compose import plan_runs
from bench.config import RunConfig
from bench.data import LareqaDataset, load_lareqa, split_by_article
from bench.synthetic import synthesize
from bench.errors import BenchError, ConfigError, exit_on_user_error, one_line
from bench.distributed import all_gather_numbers, all_sum, launcher_command, needs_launcher, shard_batch
from bench.encode import TextEncoder
from bench.retrieval import EvalSet, evaluate, load_eval_set
from bench.memory import peak_rss_bytes
from bench.model import build_encoder, count_parameters
from bench.objective import ContrastiveRetriever, MaskedLanguageModel
from bench.pairs import TrainingPairs, texts_by_language, training_pairs
from bench.profiler import RunProfiler, provenance_fields
from bench.results_io import ensure_writable_dir, write_run
from bench.sampler import BatchStats, build_batch_sampler
from bench.schema import SUCCESS, RunRecord
from bench.tokenizer import tokenizer_for_run, unknown_rates
from bench.train import StepRoles, WorkCounter, pick_probed_step, train


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise BenchError("device=cuda was requested but CUDA is not available; use device=cpu or device=auto")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def run_id(cfg: RunConfig) -> str:
    """Readable and unique: the strategy, language count and seed, then the config hash."""
    return f"{cfg.strategy.name}-L{len(cfg.languages)}-s{cfg.seed}-{cfg.config_hash()[:10]}"


def describe(cfg: RunConfig, command: str | None) -> RunRecord:
    """The row's configuration columns, filled before anything runs (so a failure still says what it was)."""
    return RunRecord(
        run_id=run_id(cfg),
        config_hash=cfg.config_hash(),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command,
        strategy=cfg.strategy.name,
        objective=cfg.strategy.objective,
        alpha=cfg.strategy.alpha,
        n_languages=len(cfg.languages),
        languages=",".join(cfg.languages),
        dataset=cfg.data.name,
        seed=cfg.seed,
        model=cfg.model.name,
        tokenizer_policy=cfg.tokenizer.policy,
        budget=cfg.train.budget,
        steps=cfg.steps,
        warmup_steps=cfg.train.warmup_steps,
        batch_size=cfg.train.batch_size,
        max_length=cfg.train.max_length,
        temperature=cfg.strategy.temperature if cfg.strategy.objective == "contrastive" else None,
        lr=cfg.train.lr,
        mode=cfg.mode,
        threads=cfg.train.threads,
        launcher=cfg.launcher,
        concurrency=cfg.concurrency,
        mixed_precision=cfg.train.mixed_precision,
        rng_source=f"seed={cfg.seed}: torch.manual_seed (init), random.Random(seed+epoch) (sampler), torch.Generator(seed) (masking)",
    )


@dataclass
class Prepared:
    """Everything built before training starts."""

    train_split: LareqaDataset
    pairs: TrainingPairs
    tokenizer: Tokenizer
    tokenized: TokenizedPairs
    special: SpecialIds


def prepare_data(cfg: RunConfig, profiler: RunProfiler) -> Prepared:
    with profiler.stage("data"):
        full = load_lareqa(cfg.data.name, cfg.data.root, cfg.data.files)
        if cfg.data.synthetic_languages is not None:
            # Data seed fixed at 0: changing the run seed must not change the data (or its cached vocabulary).
            full = synthesize(full, cfg.data.synthetic_languages, seed=0)
        train_split, _ = split_by_article(full, cfg.data.heldout_fraction)
        pairs = training_pairs(train_split, cfg.languages)
    with profiler.stage("tokenizer"):
        tokenizer = tokenizer_for_run(cfg.tokenizer, texts_by_language(train_split), cfg.languages)
        tokenized = TokenizedPairs.build(tokenizer, pairs.queries, pairs.passages, cfg.train.max_length)
    vocab = max(cfg.model.vocab_size or 0, tokenizer.get_vocab_size())
    return Prepared(train_split, pairs, tokenizer, tokenized, SpecialIds.of(tokenizer, vocab))


def build_objective(cfg: RunConfig, tokenizer: Tokenizer) -> torch.nn.Module:
    torch.manual_seed(cfg.seed)  # random init depends on the seed alone
    encoder = build_encoder(cfg.model, tokenizer.get_vocab_size())
    if cfg.strategy.objective == "mlm":
        return MaskedLanguageModel(encoder)
    return ContrastiveRetriever(encoder, cfg.model.pooling, cfg.strategy.temperature, cfg.train.gather_negatives)


def make_collate(cfg: RunConfig, prepared: Prepared):
    if cfg.strategy.objective == "contrastive":
        return lambda step, refs: collate_contrastive(refs, prepared.tokenized, prepared.special)
    generator = torch.Generator()

    def collate(step: int, refs):
        generator.manual_seed(cfg.seed * 1_000_003 + step)  # masking depends on (seed, step) only
        return collate_masked_lm(refs, prepared.tokenized, prepared.special, cfg.strategy.mask_prob, generator)

    return collate


def plan_batches(cfg: RunConfig, pairs: TrainingPairs):
    sampler = build_batch_sampler(
        cfg.strategy.name,
        pairs.index,
        cfg.train.batch_size,
        cfg.seed,
        alpha=cfg.strategy.alpha if cfg.strategy.name == "hybrid" else None,
        mlm_exponent=cfg.strategy.sampling_exponent,
    )
    return sampler.plan(cfg.steps)


def execute(cfg: RunConfig, record: RunRecord) -> tuple[RunRecord, pd.DataFrame | None]:
    """Train and evaluate one configuration, filling `record` as each stage completes."""
    torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.device)
    accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision=cfg.train.mixed_precision)
    world, rank = accelerator.num_processes, accelerator.process_index
    profiler = RunProfiler(accelerator.device, cfg.train.mixed_precision)
    record.update(
        device_type=device.type,
        n_devices=world,
        gather_negatives=world > 1 and cfg.train.gather_negatives,
        **provenance_fields(accelerator.device),
    )

    prepared = prepare_data(cfg, profiler)
    eval_sets = load_eval_sets(cfg)
    record.update(vocab_size=prepared.tokenizer.get_vocab_size(), **unk_fields(prepared.tokenizer, eval_sets))
    plan = plan_batches(cfg, prepared.pairs)  # the global batches, identical on every rank
    stats = BatchStats.of(plan)
    record.update(
        mono_batch_fraction=stats.mono_batch_fraction,
        cross_pair_fraction=stats.cross_pair_fraction,
        languages_seen=",".join(stats.languages_seen),
    )
    local_plan = [shard_batch(batch, rank, world) for batch in plan]
    if cfg.profiler.dump_batches:
        dump_batches(Path(cfg.results.dir), record.run_id, rank, local_plan, prepared.pairs)
    with profiler.stage("model_build"):
        objective = build_objective(cfg, prepared.tokenizer)
        optimizer = torch.optim.AdamW(objective.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        objective, optimizer = accelerator.prepare(objective, optimizer)
    encoder = accelerator.unwrap_model(objective).encoder
    record.update(model_params=count_parameters(encoder))

    mlm = cfg.strategy.objective == "mlm"
    volumes = [padded_volume(refs, prepared.tokenized, mlm) for refs in plan]  # global: every rank probes the same step
    roles = StepRoles(cfg.train.warmup_steps, pick_probed_step(volumes, cfg.train.warmup_steps))
    with profiler.training_window():
        outcome = train(objective, optimizer, local_plan, make_collate(cfg, prepared), accelerator, roles,
                        cfg.profiler.track_memory, cfg.profiler.count_flops)  # fmt: skip
    record.update(loss_curve=outcome.losses, final_loss=outcome.losses[-1] if outcome.losses else None)
    record.update(**profiler.training_fields(outcome, world, record.device_name, global_work(outcome.work)))
    record.update(**gather_memory_fields(profiler.memory_fields(outcome)))

    per_setting = None
    pooling = cfg.strategy.eval_pooling or cfg.model.pooling
    text_encoder = TextEncoder(encoder, prepared.tokenizer, pooling, cfg.eval.max_length or cfg.train.max_length)
    if cfg.results.save_encoder and accelerator.is_main_process:
        text_encoder.save(Path(cfg.results.dir) / "encoders" / record.run_id)
    if eval_sets and accelerator.is_main_process:
        with profiler.stage("eval"):
            result = evaluate(text_encoder, eval_sets, cfg.languages, cfg.eval.batch_size, cfg.eval.query_chunk)
        record.update(**result.summary)
        per_setting = result.table
    accelerator.wait_for_everyone()
    record.update(**profiler.stage_fields())
    return record, per_setting


def load_eval_sets(cfg: RunConfig) -> list[EvalSet]:
    if not cfg.eval.enabled:
        return []
    if cfg.data.name == "synthetic":
        raise ConfigError("data=synthetic has no evaluation set (its languages are not real); add eval=none")
    return [load_eval_set(name, cfg.eval.languages, cfg.data.heldout_fraction) for name in cfg.eval.datasets]


def global_work(work: WorkCounter) -> WorkCounter:
    """Samples and tokens over all ranks: the numerators of global throughput."""
    return WorkCounter(*all_sum([work.samples, work.padded_tokens, work.real_tokens]))


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


def dump_batches(results_dir: Path, rid: str, rank: int, local_plan, pairs: TrainingPairs) -> None:
    """Write this rank's batches (group ids and languages) for inspection and the multi-device test."""
    path = results_dir / "batches" / f"{rid}-rank{rank}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [[[pairs.index.groups[r.group], r.query_lang, r.passage_lang] for r in batch] for batch in local_plan]
    path.write_text(json.dumps(rows))


def unk_fields(tokenizer: Tokenizer, eval_sets: list[EvalSet]) -> dict:
    """Unknown-token rate per evaluation language (answers and questions), over every eval set."""
    texts: dict[str, list[str]] = {}
    for eval_set in eval_sets:
        for lang, data in eval_set.dataset.by_lang.items():
            texts.setdefault(lang, []).extend([q.text for q in data.questions] + [data.answer_text(q) for q in data.questions])
    rates = unknown_rates(tokenizer, texts)
    return {"unk_rate_by_lang": json.dumps(rates, sort_keys=True), "unk_rate_max": max(rates.values()) if rates else None}


def predict_row(cfg: RunConfig, record: RunRecord) -> RunRecord:
    """mode=predict: the memory columns from one step on fake tensors; nothing is trained or allocated."""
    from bench.predict import predict_memory  # imported here: predict builds on this module's stages

    started = time.perf_counter()
    torch.set_num_threads(cfg.train.threads)
    record.update(**predict_memory(cfg).record_fields(), **provenance_fields(torch.device("cpu")))
    record.update(wall_s=time.perf_counter() - started)
    return record


def prepare_tokenizer(cfg: RunConfig) -> None:
    """Train (or find) a run's vocabulary; the sweep calls it once per vocabulary before runs start in parallel."""
    profiler = RunProfiler(torch.device("cpu"))
    prepare_data(cfg, profiler)


def is_main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def reached(started: float) -> dict:
    """How far a failed or interrupted run got: its time and its host memory high-water mark."""
    return {"wall_s": time.perf_counter() - started, "peak_rss_bytes": peak_rss_bytes(include_children=False)}


def run_and_record(cfg: RunConfig, command: str | None = None) -> RunRecord:
    """Execute one run and persist its row, whatever happens: a failure is a row, not a lost result."""
    results_dir = ensure_writable_dir(Path(cfg.results.dir))
    record = describe(cfg, command)
    per_setting = None
    started = time.perf_counter()
    try:
        if cfg.mode == "predict":
            record = predict_row(cfg, record)
        else:
            record, per_setting = execute(cfg, record)
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
        write_run(results_dir, record, per_setting)
    return record


def summary_line(record: RunRecord) -> str:
    if record.status == "predicted":
        return f"{record.run_id}: predicted peak tensor memory {record.peak_tensor_bytes:,} B (step {record.tracked_step})"
    if record.status != "ok":
        return f"{record.run_id}: {record.status} ({record.error_type}: {record.error_message})"
    quality = f", multi mAP {record.eval_xquad_r_map_multi:.3f}" if record.eval_xquad_r_map_multi is not None else ""
    return (
        f"{record.run_id}: ok in {record.wall_s:.1f}s, {record.samples_per_s:.1f} samples/s, "
        f"peak tensor {record.peak_tensor_bytes or 0:,} B, RSS {record.peak_rss_bytes or 0:,} B{quality}"
    )


def _interrupt_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt  # handled like Ctrl-C: the row is written as "interrupted"


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config_name = "config"
    if argv[:1] == ["--config-name"]:  # the sweep composes its runs from conf/sweep.yaml
        config_name, argv = argv[1], argv[2:]
    (planned,) = plan_runs(config_name, argv, sweep=False)
    if needs_launcher(planned.config.train.devices):
        return subprocess.call(launcher_command(planned.config.train.devices, ["--config-name", config_name, *argv]))
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    record = run_and_record(planned.config, command="python -m bench.run " + " ".join(argv))
    if is_main_rank():
        print(summary_line(record))
    return 0 if record.status in SUCCESS else 1


if __name__ == "__main__":
    sys.exit(main())
