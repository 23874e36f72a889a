"""The typed configuration of one run, validated once at the edge.

Every value comes from `conf/` (the one place defaults live); these dataclasses only say what a
value may be. A group's settings live with the part that uses them (`DataConfig` in
bench.data.lareqa, `TokenizerConfig` in bench.data.tokenizer, `ModelConfig` in bench.models.encoder,
the strategy's class in bench.strategies, `EvalConfig` in bench.evaluation.config), so those parts
never import this package; this module has the rest and composes them into `RunConfig`.
`RunConfig.from_dict` validates a plain mapping (a composed Hydra config, or the JSON a sweep hands
its child process) and every error names the override key to fix. Past this module nothing reads
`DictConfig`. `FinetuneCheck` is validated here too but read beside a run, not in it: it changes no result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch

from bench.data.lareqa import DataConfig
from bench.data.synthetic import synthetic_language_codes
from bench.data.tokenizer import TokenizerConfig
from bench.errors import ConfigError, require_choice, require_positive_int
from bench.evaluation.config import EvalConfig
from bench.measure.hardware import native_bf16
from bench.models.encoder import ModelConfig
from bench.strategies import strategy_class
from bench.strategies.base import Strategy

BUDGETS = ("fixed", "per_language")
DEVICES = ("auto", "cpu", "cuda")
MODES = ("train", "predict")
MIXED_PRECISION = ("no", "bf16", "fp16", "auto")  # auto: bf16 where the device runs it natively, else no
LAUNCHERS = ("local", "parallel", "slurm")
LR_SCHEDULES = ("constant", "linear", "constant_with_warmup")


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int
    max_length: int
    budget: str
    steps: int
    steps_per_language: int
    warmup_steps: int  # excluded from the timing statistics
    lr: float
    lr_schedule: str  # constant | linear (warm-up over lr_warmup_steps, then linear decay to 0) | constant_with_warmup
    lr_warmup_steps: int
    weight_decay: float
    threads: int
    mixed_precision: str
    gather_negatives: bool
    devices: int  # ranks per run (DDP through accelerate); >1 starts them with torchrun

    def __post_init__(self) -> None:
        for key in ("batch_size", "max_length", "steps", "steps_per_language", "threads", "devices"):
            require_positive_int(getattr(self, key), f"train.{key}")
        if self.batch_size < 2:
            raise ConfigError(f"train.batch_size must be at least 2 for in-batch negatives, got {self.batch_size}")
        if self.max_length < 4:
            raise ConfigError(f"train.max_length must be at least 4 tokens, got {self.max_length}")
        for key in ("warmup_steps", "lr_warmup_steps"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 0:
                raise ConfigError(f"train.{key} must be an integer >= 0, got {getattr(self, key)!r}")
        require_choice(self.budget, "train.budget", BUDGETS)
        require_choice(self.lr_schedule, "train.lr_schedule", LR_SCHEDULES)
        if self.lr_schedule == "constant" and self.lr_warmup_steps:
            raise ConfigError("train.lr_warmup_steps needs train.lr_schedule=linear or constant_with_warmup "
                              "(a constant rate has no warm-up)")
        require_choice(self.mixed_precision, "train.mixed_precision", MIXED_PRECISION)
        if self.batch_size % self.devices:
            raise ConfigError(f"train.batch_size={self.batch_size} must be divisible by train.devices={self.devices}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"train.lr must be positive, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay}")

    def total_steps(self, n_languages: int) -> int:
        """Per-language budget: the same number of steps per training language, so cost curves mean something."""
        return self.steps_per_language * n_languages if self.budget == "per_language" else self.steps


@dataclass(frozen=True)
class ProfilerConfig:
    track_memory: bool
    count_flops: bool
    measure_energy: bool
    dump_batches: bool  # write each rank's batches to results.dir/batches/ (inspection, tests)
    contention_threshold: float  # a run is `contended` when other processes averaged more than this many cores


@dataclass(frozen=True)
class ResultsConfig:
    dir: str
    rerun: bool  # measure again even if results.dir already holds an ok row for this configuration
    save_encoder: bool  # write the trained encoder to results.dir/encoders/<run_id>/ (for bench.evaluate)
    per_query: bool  # write every query's average precision to results.dir/per_query/<run_id>.parquet
    allow_dirty: bool  # let a sweep write into results/ from a tree with uncommitted changes


@dataclass(frozen=True)
class PredictConfig:
    """mode=predict's worst case beside the plan's maximum (conf/config.yaml `predict:`, the bound spelt out there)."""

    mask_delta: float  # masked LM: the count of masked tokens exceeds its Hoeffding bound with probability mask_delta

    def __post_init__(self) -> None:
        if not (isinstance(self.mask_delta, float) and 0 < self.mask_delta < 1):
            raise ConfigError(f"predict.mask_delta must be a probability in (0, 1), got {self.mask_delta!r}")


@dataclass(frozen=True)
class LauncherConfig:
    entry: str  # the module a launched run executes: `python -m ENTRY --config-file F` (conf/launcher/*.yaml)
    name: str  # local (one run at a time), parallel (`jobs` at a time), slurm (submitit)
    jobs: int
    slurm: dict[str, Any]  # submitit's executor parameters (launcher=slurm)

    def __post_init__(self) -> None:
        require_choice(self.name, "launcher.name", LAUNCHERS)
        if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", str(self.entry)):
            raise ConfigError(f"launcher.entry must be a module name such as bench.run, got {self.entry!r}")
        require_positive_int(self.jobs, "launcher.jobs")


@dataclass(frozen=True)
class RunConfig:
    languages: tuple[str, ...]
    seed: int
    device: str
    mode: str
    data: DataConfig
    model: ModelConfig
    tokenizer: TokenizerConfig
    strategy: Strategy
    train: TrainConfig
    profiler: ProfilerConfig
    eval: EvalConfig
    results: ResultsConfig
    launcher: LauncherConfig
    predict: PredictConfig

    @property
    def steps(self) -> int:
        return self.train.total_steps(len(self.languages))

    @property
    def run_id(self) -> str:
        """Readable and unique: the strategy, language count and seed, then the config hash."""
        return f"{self.strategy.name}-L{len(self.languages)}-s{self.seed}-{self.config_hash()[:10]}"

    def to_dict(self) -> dict:
        """Plain JSON-able values; `RunConfig.from_dict(cfg.to_dict()) == cfg`."""
        values = asdict(self)
        values["strategy"] = {"name": self.strategy.name, **self.strategy.params()}
        return values

    def config_hash(self) -> str:
        """Identity of a measurement: everything that can change a result, not where or how it is launched, nor
        what a prediction assumes of its worst case (`predict`: a reading beside the result, recorded in the row)."""
        identity = self.to_dict()
        identity.pop("results")
        identity.pop("launcher")
        identity.pop("predict")
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, raw: dict) -> RunConfig:
        """Validate a plain mapping into a RunConfig, or raise ConfigError naming the key."""
        raw = dict(raw)
        data = _with_synthetic_languages(build(DataConfig, raw.get("data"), "data"))
        strategy = build_strategy(raw.get("strategy"))
        languages = resolve_languages(raw.get("languages"), data.languages)
        if len(languages) < strategy.min_languages:
            raise ConfigError(f"strategy={strategy.name} needs at least {strategy.min_languages} languages, got languages={list(languages)}")
        seed = raw.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        config = cls(
            languages=languages,
            seed=seed,
            device=require_choice(raw.get("device"), "device", DEVICES),
            mode=require_choice(raw.get("mode"), "mode", MODES),
            data=data,
            model=build(ModelConfig, raw.get("model"), "model"),
            tokenizer=build(TokenizerConfig, raw.get("tokenizer"), "tokenizer"),
            strategy=strategy,
            train=build(TrainConfig, raw.get("train"), "train"),
            profiler=build(ProfilerConfig, raw.get("profiler"), "profiler"),
            eval=build(EvalConfig, raw.get("eval"), "eval"),
            results=build(ResultsConfig, raw.get("results"), "results"),
            launcher=build(LauncherConfig, raw.get("launcher"), "launcher"),
            predict=build(PredictConfig, raw.get("predict"), "predict"),
        )
        config = resolve_auto_precision(config)
        check_compatible(config)
        return config


@dataclass(frozen=True)
class FinetuneCheck:
    """`finetune_check` in conf/config.yaml: pretrained weights trained at a from-scratch learning rate are
    allowed, but said. Read where runs are planned and kept out of `RunConfig`, since it changes no result
    (a run's identity, and so every committed row's run_id, stays what it was)."""

    max_lr: float  # pretrained weights trained faster than this get one warning line
    train_preset: str  # the conf/train/ preset with fine-tuning settings, which the warning points to

    def __post_init__(self) -> None:
        if not (isinstance(self.max_lr, float) and math.isfinite(self.max_lr) and self.max_lr > 0):
            raise ConfigError(f"finetune_check.max_lr must be a positive number, got {self.max_lr!r}")

    def too_fast(self, cfg: RunConfig) -> bool:
        """A run that trains pretrained weights above max_lr (mode=predict trains nothing)."""
        return cfg.mode == "train" and bool(cfg.model.pretrained) and cfg.train.lr > self.max_lr

    def warning(self, cfg: RunConfig, preset_lr: float) -> str:
        """One line naming the run, its rate, the limit and the fine-tuning preset's rate."""
        return (f"warning: {cfg.run_id}: train.lr={cfg.train.lr:g} trains the pretrained model={cfg.model.name} at a "
                f"from-scratch rate (above finetune_check.max_lr={self.max_lr:g}), which can undo its pre-training; "
                f"the fine-tuning default is train={self.train_preset} (train.lr={preset_lr:g})")


def resolve_auto_precision(cfg: RunConfig) -> RunConfig:
    """`auto` precisions become what this machine runs natively: bf16 on CPUs with AMX or AVX-512 BF16
    (and CUDA devices that support it), fp32 elsewhere, where bf16 is emulated and slower. Resolved at
    the edge, so the run's identity (its config hash) names the precision it really used."""
    target = "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    native = native_bf16(target)
    train, evaluation = cfg.train, cfg.eval
    if train.mixed_precision == "auto":
        train = replace(train, mixed_precision="bf16" if native else "no")
    if evaluation.precision == "auto":
        evaluation = replace(evaluation, precision="bf16" if native else "fp32")
    return replace(cfg, train=train, eval=evaluation)


def check_compatible(cfg: RunConfig) -> None:
    """Settings that are each valid but do not go together."""
    if cfg.model.pretrained and cfg.tokenizer.policy != "pretrained":
        raise ConfigError(f"model.pretrained={cfg.model.pretrained!r} needs the model's own tokenizer: add tokenizer=pretrained "
                          f"(tokenizer.policy={cfg.tokenizer.policy} would feed another vocabulary's ids into its embeddings)")
    if cfg.tokenizer.policy == "pretrained" and not cfg.model.pretrained:
        raise ConfigError("tokenizer=pretrained reads the tokenizer of model.pretrained, which is not set")
    if cfg.eval.curve.every_steps and not cfg.eval.enabled:
        raise ConfigError("eval.curve.every_steps needs eval.enabled=true")
    if cfg.eval.curve.every_steps and cfg.train.devices > 1:
        raise ConfigError("eval.curve.every_steps evaluates on one process; it needs train.devices=1")
    if cfg.mode == "train" and cfg.eval.enabled and cfg.data.synthetic_languages is not None:
        raise ConfigError("data=synthetic has no evaluation set (its languages are not real); add eval=none")


def build_strategy(raw: Any) -> Strategy:
    """The registered strategy named by `strategy.name`, with its parameters from the other keys."""
    if not isinstance(raw, dict) or "name" not in raw:
        raise ConfigError("strategy must be a mapping with a `name` (choose with strategy=...)")
    params = {k: v for k, v in raw.items() if k != "name"}
    return build(strategy_class(raw["name"]), params, "strategy")


def build(cls: type, raw: Any, key: str) -> Any:
    """A dataclass from a mapping: unknown and missing keys are errors, lists become tuples, ints become floats."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{key} must be a mapping, got {raw!r}")
    known = [f for f in fields(cls) if f.init]
    extra = sorted(set(raw) - {f.name for f in known})
    if extra:
        raise ConfigError(f"{key}: unknown key(s) {', '.join(f'{key}.{e}' for e in extra)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in known:
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}.{f.name} is missing")
            continue
        values[f.name] = _coerce(raw[f.name], hints[f.name], f"{key}.{f.name}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Bring a YAML/JSON value to the annotated type where that is unambiguous."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)] or (hint,)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if origin is dict and isinstance(value, dict) and dataclasses.is_dataclass(args[1]):
        return {name: build(args[1], item, f"{key}.{name}") for name, item in value.items()}
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return build(hint, value, key)
    if origin is tuple and isinstance(value, str):
        raise ConfigError(f"{key} must be a list, got the string {value!r}")
    return value


def resolve_languages(value: Any, available: tuple[str, ...]) -> tuple[str, ...]:
    """`languages=N` takes the first N of the data's order; a list names them explicitly."""
    if isinstance(value, (list, tuple)):
        codes = [str(v) for v in value]
    elif isinstance(value, bool):
        raise ConfigError(f"languages must be a count or a list of language codes, got {value!r}")
    elif isinstance(value, int):
        if not 1 <= value <= len(available):
            raise ConfigError(f"languages={value} is impossible: the data has {len(available)} languages ({', '.join(available)})")
        return available[:value]
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return resolve_languages(int(value), available)
    elif isinstance(value, str) and value[:1].isalpha() and value.isalnum():
        codes = [value]
    else:
        raise ConfigError(f"languages must be a positive integer or a list of language codes, got {value!r}")
    unknown = [c for c in codes if c not in available]
    if unknown:
        raise ConfigError(f"languages: unknown code(s) {', '.join(unknown)}; this data has {', '.join(available)}")
    if len(set(codes)) != len(codes) or not codes:
        raise ConfigError(f"languages must list distinct codes, got {codes}")
    return tuple(codes)


def _with_synthetic_languages(data: DataConfig) -> DataConfig:
    """data=synthetic: the language codes follow from how many languages are derived."""
    if data.synthetic_languages is None:
        if not data.languages:
            raise ConfigError("data.languages must list the data's languages")
        return data
    return replace(data, languages=synthetic_language_codes(data.synthetic_languages))
