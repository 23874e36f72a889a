"""The stages of a run, in order: data -> tokenizer -> batch plan -> model -> objective -> probed step.

Each stage takes the typed `RunConfig` and returns plain objects; none of them launches or writes
anything. `RunPipeline` strings them together for one run: every product (parsed data, tokenizer,
evaluation sets, batch plan, collation, probed step) is built once, on first use, inside its timed
stage, and handed on. Two scenarios use the one pipeline: `bench.run` measures a real run and
`bench.predict` replays its probed step on fake tensors.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timezone

import torch
from torch import nn

from bench.config import RunConfig
from bench.core.pairs import PairBatch
from bench.data.collate import Batch, SpecialIds, TokenizedPairs, full_length_pairs
from bench.data.lareqa import LareqaDataset, load_lareqa, split_by_article
from bench.data.pairs import TrainingPairs, texts_by_language, training_pairs
from bench.data.synthetic import synthesize
from bench.data.tokenizer import RunTokenizer, tokenizer_for_run, unknown_rates
from bench.errors import BenchError, ConfigError
from bench.evaluation.curve import QualityCurve, curve_subset
from bench.evaluation.encode import TextEncoder
from bench.evaluation.references import references
from bench.evaluation.sets import EvalSet, eval_sets_for, heldout_set
from bench.measure.fake import EmulatedAccelerator, fake_step_peak
from bench.measure.memory import MemoryPeak
from bench.measure.timing import StepTimer
from bench.models.encoder import build_encoder, check_vocabulary
from bench.models.pretrained import load_mlm_head_state, load_pretrained_config
from bench.results.schema import RunRecord
from bench.strategies.base import PretrainedParts
from bench.training.loop import Collate, linear_schedule, train_step, warmup_constant_schedule

RNG_SOURCE = ("seed drives every stream, each derived from (seed, purpose, epoch or step) by hashing: "
              "torch.manual_seed(seed) (init), Random('groups/seed=s/epoch=e') (batches), "
              "Random('hybrid-coin/seed=s') (hybrid), sha256('mask/seed=s/step=t') (masks)")  # fmt: skip


def device_type(requested: str) -> str:
    """`auto` means this machine's accelerator if it has one; a prediction may target cuda without one."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def resolve_device(requested: str) -> torch.device:
    """The device a real run uses; cuda must exist."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise BenchError("device=cuda was requested but CUDA is not available; use device=cpu or device=auto")
    return torch.device(device_type(requested))


def describe(cfg: RunConfig, command: str | None) -> RunRecord:
    """The row's configuration columns, filled before anything runs (so a failure still says what it was)."""
    params = cfg.strategy.params()
    return RunRecord(
        run_id=cfg.run_id,
        config_hash=cfg.config_hash(),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command,
        strategy=cfg.strategy.name,
        objective=cfg.strategy.objective,
        strategy_params=json.dumps(params, sort_keys=True),
        alpha=params.get("alpha"),
        temperature=params.get("temperature"),
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
        lr=cfg.train.lr,
        lr_schedule=cfg.train.lr_schedule,
        lr_warmup_steps=cfg.train.lr_warmup_steps,
        mode=cfg.mode,
        threads=cfg.train.threads,
        launcher=cfg.launcher.name,
        concurrency=cfg.launcher.jobs,
        mixed_precision=cfg.train.mixed_precision,
        eval_precision=cfg.eval.precision if cfg.eval.enabled or cfg.eval.curve.every_steps else None,
        rng_source=RNG_SOURCE,
    )


@dataclass
class Prepared:
    """Everything built before training starts."""

    train_split: LareqaDataset
    pairs: TrainingPairs
    tokenizer: RunTokenizer
    tokenized: TokenizedPairs
    special: SpecialIds


def load_data(cfg: RunConfig) -> LareqaDataset:
    full = load_lareqa(cfg.data.name, cfg.data.root, cfg.data.files)
    if cfg.data.synthetic_languages is not None:
        # Data seed fixed at 0: changing the run seed must not change the data (or its cached vocabulary).
        # A vocabulary of the run's languages needs only their texts; rendering all 104 took most of a prediction.
        only = cfg.languages if cfg.tokenizer.policy.startswith("selected") else None
        full = synthesize(full, cfg.data.synthetic_languages, seed=0, only=only)
    return full


def prepare_data(cfg: RunConfig, profiler=None) -> Prepared:
    """Training split, pairs, the run's tokenizer and every training text tokenised once."""
    return tokenize_pairs(cfg, *load_pairs(cfg, profiler), profiler=profiler)


def load_pairs(cfg: RunConfig, profiler=None) -> tuple[LareqaDataset, LareqaDataset, TrainingPairs]:
    """The whole dataset, its training split, and the training pairs of the run's languages (stage data)."""
    with _stage(profiler, "data"):
        full = load_data(cfg)
        train_split, _ = split_by_article(full, cfg.data.heldout_fraction)
        return full, train_split, training_pairs(train_split, cfg.languages)


def tokenize_pairs(cfg: RunConfig, full: LareqaDataset, train_split: LareqaDataset, pairs: TrainingPairs,
                   plan: list[PairBatch] | None = None, profiler=None) -> Prepared:  # fmt: skip
    """The run's tokenizer, and the training texts tokenised: all of them, or those `plan` uses (stage tokenizer)."""
    with _stage(profiler, "tokenizer"):
        tokenizer = tokenizer_for_run(cfg.tokenizer, cfg.model, texts_by_language(train_split), cfg.languages)
        if cfg.model.pretrained:  # before anything runs: a tokenizer that overruns the checkpoint's rows
            check_vocabulary(tokenizer.vocab_size, load_pretrained_config(cfg.model.pretrained).vocab_size, f"model={cfg.model.name}")
        if cfg.model.trim_vocabulary:
            tokenizer = tokenizer.trimmed(vocabulary_texts(cfg, full))
        tokenized = TokenizedPairs.build(tokenizer, pairs.queries, pairs.passages, cfg.train.max_length, plan)
    vocab = max(cfg.model.vocab_size or 0, tokenizer.vocab_size)
    return Prepared(train_split, pairs, tokenizer, tokenized, SpecialIds.of(tokenizer, vocab))


def vocabulary_texts(cfg: RunConfig, full: LareqaDataset) -> dict[str, list[str]]:
    """Every text the run can tokenise: its data (training and held-out articles, every language) and
    its evaluation sets, as queries and passages; a trimmed vocabulary keeps exactly their tokens."""
    datasets = [full] + [s.dataset for s in load_eval_sets(cfg, every_run=True)]
    return {"query": [q.text for d in datasets for part in d.by_lang.values() for q in part.questions],
            "passage": [c.text for d in datasets for part in d.by_lang.values() for c in part.candidates]}  # fmt: skip


def warm_vocabularies(configs: list[RunConfig]) -> None:
    """Build each distinct vocabulary once, before runs start: parallel runs must not train their own."""
    seen = set()
    for cfg in configs:
        key = (cfg.data, cfg.tokenizer, cfg.model.pretrained, cfg.languages if cfg.tokenizer.policy.startswith("selected") else None)
        if key not in seen:
            seen.add(key)
            prepare_data(cfg)


def load_eval_sets(cfg: RunConfig, every_run: bool = False) -> list[EvalSet]:
    """The run's evaluation sets: those `eval.only` keeps for this run's seed and language count
    (all of them with `every_run`, e.g. for reference levels)."""
    if not cfg.eval.enabled:
        return []
    if cfg.data.synthetic_languages is not None:
        raise ConfigError("data=synthetic has no evaluation set (its languages are not real); add eval=none")
    sets = eval_sets_for(cfg.eval, cfg.data)
    subset = cfg.eval.only
    return [s for s in sets if every_run or s.name not in subset or subset[s.name].includes(cfg.seed, len(cfg.languages))]


def unk_fields(tokenizer: RunTokenizer, eval_sets: list[EvalSet]) -> dict:
    """Unknown-token rate per evaluation language (questions and answers), over every eval set."""
    texts: dict[str, list[str]] = {}
    for eval_set in eval_sets:
        for lang, data in eval_set.dataset.by_lang.items():
            texts.setdefault(lang, []).extend([q.text for q in data.questions] + [data.answer_text(q) for q in data.questions])
    rates = unknown_rates(tokenizer, texts)
    return {"unk_rate_by_lang": json.dumps(rates, sort_keys=True), "unk_rate_max": max(rates.values()) if rates else None}


def plan_batches(cfg: RunConfig, pairs: TrainingPairs) -> list[PairBatch]:
    """The run's global batches, step by step, from the strategy's sampler."""
    sampler = cfg.strategy.sampler(pairs.index, cfg.train.batch_size, cfg.seed)
    return sampler.plan(cfg.steps)


def build_objective(cfg: RunConfig, prepared: Prepared, load_weights: bool = True) -> nn.Module:
    """The strategy's objective around the encoder; `load_weights=False` builds a pretrained
    architecture without reading its weights (for fake tensors)."""
    torch.manual_seed(cfg.seed)  # random init depends on the seed alone
    kept = prepared.tokenizer.kept
    encoder = build_encoder(cfg.model, prepared.tokenizer.vocab_size, load_weights, kept)
    check_vocabulary(prepared.tokenizer.vocab_size, encoder.get_input_embeddings().num_embeddings, f"model={cfg.model.name}")
    head = load_mlm_head_state(cfg.model.pretrained) if cfg.model.pretrained and load_weights else None
    return cfg.strategy.build_objective(encoder, cfg.model.pooling, cfg.train.gather_negatives, PretrainedParts(head, kept))


def build_optimizer(cfg: RunConfig, objective: nn.Module, foreach: bool | None = None) -> torch.optim.Optimizer:
    """AdamW over the parameters that train (frozen embeddings get neither gradients nor state)."""
    trainable = [p for p in objective.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, foreach=foreach)


def build_scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    if cfg.train.lr_schedule == "constant":
        return None
    if cfg.train.lr_schedule == "constant_with_warmup":
        return warmup_constant_schedule(optimizer, cfg.train.lr_warmup_steps)
    return linear_schedule(optimizer, cfg.train.lr_warmup_steps, cfg.steps)


def quality_curve(cfg: RunConfig, profiler) -> QualityCurve | None:
    """eval.curve: the evaluation during training, its training seconds read from the profiler."""
    if not cfg.eval.curve.every_steps:
        return None
    subset = curve_subset(heldout_set(cfg.eval, cfg.data), cfg.eval.curve.articles)
    return QualityCurve(subset, cfg.eval.curve.metric, cfg.eval.curve.every_steps, cfg.steps, cfg.train.batch_size,
                        lambda: profiler.running_s("train"), cfg.eval.batch_size, cfg.eval.query_chunk)  # fmt: skip


def reference_levels(cfg: RunConfig, skip: set[str] = frozenset()) -> dict:
    """Chance, lexical and (for a pretrained model) zero-shot levels of the run's evaluation sets."""
    eval_sets = [s for s in load_eval_sets(cfg, every_run=True) if s.name not in skip]
    if not eval_sets:
        return {}
    torch.set_num_threads(cfg.train.threads)
    pretrained = (cfg.model.name, zero_shot_encoder(cfg)) if cfg.model.pretrained else None
    return references(eval_sets, pretrained, cfg.eval.batch_size, cfg.eval.query_chunk)


def zero_shot_encoder(cfg: RunConfig) -> TextEncoder:
    """A pretrained model as it is, with its own tokenizer, pooling and prefixes (bench.evaluate)."""
    tokenizer = tokenizer_for_run(cfg.tokenizer, cfg.model, {}, cfg.languages)
    encoder = build_encoder(cfg.model, tokenizer.vocab_size)
    check_vocabulary(tokenizer.vocab_size, encoder.get_input_embeddings().num_embeddings, f"model={cfg.model.name}")
    return evaluation_encoder(cfg, encoder, tokenizer, cfg.model.pooling)


def evaluation_encoder(cfg: RunConfig, encoder, tokenizer: RunTokenizer, pooling: str) -> TextEncoder:
    """The encoder as eval.* evaluates it: its length (default: the training length) and precision."""
    return TextEncoder(encoder, tokenizer, pooling, cfg.eval.max_length or cfg.train.max_length, cfg.eval.precision)


def make_collate(cfg: RunConfig, prepared: Prepared) -> Collate:
    return cfg.strategy.collate(prepared.tokenized, prepared.special, cfg.seed)


def choose_probed_step(cfg: RunConfig, plan: list[PairBatch], collate: Collate, prepared: Prepared) -> int | None:
    """The step whose memory is tracked: the one that needs the most, never step 0 (no optimizer state
    yet), preferably after warm-up; ties go to the earliest step.

    What drives memory is the strategy's to say (`memory_drivers`: padded widths, and for masked LM the
    number of masked tokens). Steps that another step exceeds in every driver are out; if several
    remain, each distinct candidate is replayed on fake tensors (`bench.measure.fake`) and the largest
    predicted peak wins, so the probe is the run's peak, not a proxy's."""
    after_warmup = list(range(max(1, cfg.train.warmup_steps), len(plan)))
    candidates = after_warmup or list(range(1, len(plan)))
    if not candidates:
        return None
    batches = {step: collate(step, plan[step]) for step in candidates}
    drivers = {step: cfg.strategy.memory_drivers(batch) for step, batch in batches.items()}
    front = pareto_front(drivers)
    if len({drivers[step] for step in front}) == 1:
        return front[0]
    peaks = {step: fake_peak(cfg, prepared, batches[step])[0].total_bytes for step in front}
    return max(front, key=lambda step: (peaks[step], -step))


def fake_peak(cfg: RunConfig, prepared: Prepared, batch: Batch) -> tuple[MemoryPeak, nn.Module, EmulatedAccelerator]:
    """The run's training step of `batch` on fake tensors, as its target device would run it (`bench.measure.fake`):
    its objective built without reading weights, its optimizer, `train_step` itself; nothing is allocated."""
    return fake_step_peak(lambda: build_objective(cfg, prepared, load_weights=False),
                          lambda objective, foreach: build_optimizer(cfg, objective, foreach),
                          lambda objective, optimizer, accelerator: train_step(objective, optimizer, accelerator, batch, StepTimer()),
                          device_type(cfg.device), cfg.train.mixed_precision)  # fmt: skip


def worst_case_batches(cfg: RunConfig, prepared: Prepared) -> list[Batch]:
    """The largest batches a step of `cfg` can be, whatever its plan: train.batch_size pairs whose texts fill
    train.max_length, collated by the strategy at its most (masked LM: the Hoeffding bound on masked tokens at
    predict.mask_delta); once without padding (the most tokens) and once with one text per side a token short (an
    encoder drops the attention mask of a batch without padding, and keeps it otherwise). Only the tokenizer and the
    settings shape them, so across L they change with the vocabulary alone."""
    batches = []
    for padded in (False, True):
        refs, tokenized = full_length_pairs(prepared.tokenizer, prepared.special, cfg.train.batch_size,
                                            cfg.train.max_length, padded)  # fmt: skip
        batches.append(cfg.strategy.worst_case_batch(refs, tokenized, prepared.special, cfg.predict.mask_delta))
    return batches


def pareto_front(drivers: dict[int, tuple[int, ...]]) -> list[int]:
    """The earliest step of each driver tuple that no other tuple dominates (>= everywhere, > somewhere)."""
    first: dict[tuple[int, ...], int] = {}
    for step in sorted(drivers):
        first.setdefault(drivers[step], step)
    dominated = {a for a in first for b in first if a != b and all(x <= y for x, y in zip(a, b))}
    return sorted(step for value, step in first.items() if value not in dominated)


class RunPipeline:
    """One run's products, each built once on first use and timed in its stage of `profiler` (if any)."""

    def __init__(self, cfg: RunConfig, profiler=None) -> None:
        self.cfg, self.profiler = cfg, profiler

    @cached_property
    def _data(self) -> tuple[LareqaDataset, LareqaDataset, TrainingPairs]:
        return load_pairs(self.cfg, self.profiler)

    @cached_property
    def prepared(self) -> Prepared:
        """Training split, pairs, tokenizer, and the texts the plan uses tokenised (stages data and tokenizer)."""
        return tokenize_pairs(self.cfg, *self._data, plan=self.plan, profiler=self.profiler)

    @cached_property
    def eval_sets(self) -> list[EvalSet]:
        with _stage(self.profiler, "data"):  # evaluation sets are data too: their loading is timed with it
            return load_eval_sets(self.cfg)

    @cached_property
    def plan(self) -> list[PairBatch]:
        """The global batches, step by step: identical on every rank."""
        return plan_batches(self.cfg, self._data[2])

    @cached_property
    def collate(self) -> Collate:
        return make_collate(self.cfg, self.prepared)

    @cached_property
    def probed_step(self) -> int | None:
        """The step whose memory is tracked (`choose_probed_step`); None for a run too short to have one."""
        return choose_probed_step(self.cfg, self.plan, self.collate, self.prepared)

    def probed_batch(self) -> tuple[int, Batch]:
        """The probed step and its real collated batch (what `bench.predict` replays)."""
        step = self.probed_step
        if step is None:
            raise BenchError(f"nothing to predict: a run of {self.cfg.steps} step(s) tracks no step; raise train.steps or train.steps_per_language")
        return step, self.collate(step, self.plan[step])


def _stage(profiler, name: str):
    return profiler.stage(name) if profiler is not None else contextlib.nullcontext()
