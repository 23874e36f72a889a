"""The edge between Hydra and the code: a composed `DictConfig` becomes one typed, validated `RunConfig`.

Past this module nothing reads `DictConfig`; every error names the override key to fix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from bench.errors import ConfigError
from bench.eval_config import EvalConfig
from bench.model import ModelConfig
from bench.synthetic import synthetic_language_codes
from bench.tokenizer import TokenizerConfig

STRATEGIES = ("monolingual", "crosslingual", "hybrid", "mbert")
BUDGETS = ("fixed", "per_language")
DEVICES = ("auto", "cpu", "cuda")
MODES = ("train", "predict")
MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class DataConfig:
    name: str
    root: str
    languages: tuple[str, ...]  # every language the data has, in the documented default order
    heldout_fraction: float = 0.25
    synthetic_languages: int | None = None  # data=synthetic: how many languages to derive
    source_languages: tuple[str, ...] | None = None  # files to read when they differ from `languages`

    @property
    def files(self) -> tuple[str, ...]:
        """The languages whose `<root>/<lang>.json.gz` files this data is built from."""
        return self.source_languages or self.languages


@dataclass(frozen=True)
class StrategyConfig:
    name: str
    objective: str  # "contrastive" or "mlm"
    alpha: float | None = None
    temperature: float = 0.05
    mask_prob: float = 0.15
    sampling_exponent: float = 0.7
    eval_pooling: str | None = None  # mbert: evaluated with mean pooling

    def __post_init__(self) -> None:
        if self.name not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.name!r}")
        if self.alpha is not None and not (isinstance(self.alpha, (int, float)) and 0.0 <= self.alpha <= 1.0):
            raise ConfigError(f"strategy.alpha must be in [0, 1], got {self.alpha!r}")
        if self.temperature <= 0:
            raise ConfigError(f"strategy.temperature must be positive, got {self.temperature}")
        if not 0.0 < self.mask_prob < 1.0:
            raise ConfigError(f"strategy.mask_prob must be in (0, 1), got {self.mask_prob}")

    @property
    def needs_two_languages(self) -> bool:
        return self.name == "crosslingual" or (self.name == "hybrid" and (self.alpha or 0.0) < 1.0)


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 32
    max_length: int = 128
    budget: str = "per_language"
    steps: int = 100
    steps_per_language: int = 20
    warmup_steps: int = 3
    lr: float = 5e-4
    weight_decay: float = 0.01
    threads: int = 2
    mixed_precision: str = "no"
    gather_negatives: bool = True
    devices: int = 1  # ranks per run (DDP through accelerate); >1 starts them with torchrun

    def __post_init__(self) -> None:
        for key in ("batch_size", "max_length", "steps", "steps_per_language", "threads", "devices"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"train.{key} must be a positive integer, got {value!r}")
        if self.batch_size < 2:
            raise ConfigError(f"train.batch_size must be at least 2 for in-batch negatives, got {self.batch_size}")
        if self.max_length < 4:
            raise ConfigError(f"train.max_length must be at least 4 tokens, got {self.max_length}")
        if self.warmup_steps < 0:
            raise ConfigError(f"train.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.budget not in BUDGETS:
            raise ConfigError(f"train.budget must be one of {', '.join(BUDGETS)}, got {self.budget!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"train.mixed_precision must be one of {', '.join(MIXED_PRECISION)}, got {self.mixed_precision!r}")
        if self.batch_size % self.devices:
            raise ConfigError(f"train.batch_size={self.batch_size} must be divisible by train.devices={self.devices}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be positive, got {self.lr}")

    def total_steps(self, n_languages: int) -> int:
        """Per-language budget: the same number of steps per training language, so cost curves mean something."""
        return self.steps_per_language * n_languages if self.budget == "per_language" else self.steps


@dataclass(frozen=True)
class ProfilerConfig:
    track_memory: bool = True
    count_flops: bool = True
    measure_energy: bool = True
    dump_batches: bool = False  # write each rank's batches to results.dir/batches/ (inspection, tests)


@dataclass(frozen=True)
class ResultsConfig:
    dir: str = "results/latest"
    rerun: bool = False
    save_encoder: bool = False  # write the trained encoder to results.dir/encoders/<run_id>/ (for bench.evaluate)


@dataclass(frozen=True)
class RunConfig:
    languages: tuple[str, ...]
    seed: int
    device: str
    mode: str
    data: DataConfig
    model: ModelConfig
    tokenizer: TokenizerConfig
    strategy: StrategyConfig
    train: TrainConfig
    profiler: ProfilerConfig
    eval: EvalConfig
    results: ResultsConfig
    launcher: str = "local"
    concurrency: int = 1

    @property
    def steps(self) -> int:
        return self.train.total_steps(len(self.languages))

    def config_hash(self) -> str:
        """Identity of a measurement: everything that can change a result, not where it is written."""
        identity = asdict(self)
        identity.pop("results")
        identity.pop("launcher")
        identity.pop("concurrency")
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolve_languages(value: Any, available: tuple[str, ...]) -> tuple[str, ...]:
    """`languages=N` takes the first N of the data's order; a list names them explicitly."""
    if isinstance(value, (ListConfig, list, tuple)):
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


def _section(cfg: DictConfig, key: str, cls: type) -> Any:
    raw = OmegaConf.to_container(cfg[key], resolve=True) if key in cfg else {}
    known = {f.name for f in fields(cls)}
    extra = sorted(set(raw) - known)
    if extra:
        raise ConfigError(f"{key}: unknown key(s) {', '.join(f'{key}.{e}' for e in extra)}")
    for name in ("languages", "source_languages"):
        if isinstance(raw.get(name), list):
            raw[name] = tuple(raw[name])
    try:
        return cls(**raw)
    except TypeError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _with_synthetic_languages(data: DataConfig) -> DataConfig:
    """data=synthetic: the language codes follow from how many languages are derived."""
    if data.synthetic_languages is None:
        if not data.languages:
            raise ConfigError("data.languages must list the data's languages")
        return data
    return replace(data, languages=synthetic_language_codes(data.synthetic_languages))


def _choice(value: Any, key: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def to_run_config(cfg: DictConfig) -> RunConfig:
    """Validate a composed Hydra config into a RunConfig, or raise ConfigError naming the key."""
    try:
        data = _with_synthetic_languages(_section(cfg, "data", DataConfig))
        strategy = _section(cfg, "strategy", StrategyConfig)
        languages = resolve_languages(cfg.languages, data.languages)
        seed = cfg.seed
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        if strategy.needs_two_languages and len(languages) < 2:
            raise ConfigError(f"strategy={strategy.name} needs at least 2 languages, got languages={list(languages)}")
        return RunConfig(
            languages=languages,
            seed=seed,
            device=_choice(cfg.device, "device", DEVICES),
            mode=_choice(cfg.mode, "mode", MODES),
            data=data,
            model=_section(cfg, "model", ModelConfig),
            tokenizer=_section(cfg, "tokenizer", TokenizerConfig),
            strategy=strategy,
            train=_section(cfg, "train", TrainConfig),
            profiler=_section(cfg, "profiler", ProfilerConfig),
            eval=EvalConfig.from_dict(OmegaConf.to_container(cfg.eval, resolve=True) if "eval" in cfg else {}),
            results=_section(cfg, "results", ResultsConfig),
            launcher=str(cfg.get("launcher_name", "local")),
            concurrency=int(cfg.get("launcher_concurrency", 1)),
        )
    except ConfigError:
        raise
    except Exception as exc:  # interpolation errors, missing keys: still one line naming what is wrong
        raise ConfigError(f"invalid configuration: {exc}") from None
