"""The eval.* settings (`conf/eval/*.yaml`), validated: which sets are evaluated, how an encoder is run
over them, and the evaluation during training. `bench.config` composes them into the run's `RunConfig`,
as it does the model's and tokenizer's own settings; evaluation takes them typed and never reads conf/.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.metric_names import EVAL_SUMMARY_METRICS
from bench.errors import ConfigError, require_choice, require_positive_int
from bench.evaluation.encode import PRECISIONS

DATA_PARTS = ("heldout", "train", "all")  # evaluation sets made from the run's own data


@dataclass(frozen=True)
class ExternalSet:
    """An evaluation set that is not part of the training data (zero-shot), e.g. MLQA-R."""

    root: str
    languages: tuple[str, ...]


@dataclass(frozen=True)
class CurveConfig:
    """Evaluation during training (bench.evaluation.curve): quality against cost, and the cost to a target."""

    every_steps: int  # 0: off
    articles: int  # the fixed subset: the first N held-out articles, every language
    metric: str
    target: float | None  # steps_to_target etc. are read off the curve where it first reaches this

    def __post_init__(self) -> None:
        if not isinstance(self.every_steps, int) or self.every_steps < 0:
            raise ConfigError(f"eval.curve.every_steps must be an integer >= 0 (0: off), got {self.every_steps!r}")
        require_positive_int(self.articles, "eval.curve.articles")
        require_choice(self.metric, "eval.curve.metric", EVAL_SUMMARY_METRICS)


@dataclass(frozen=True)
class SetSubset:
    """Which runs of a sweep evaluate an expensive set: empty lists mean every run."""

    seeds: tuple[int, ...]
    n_languages: tuple[int, ...]

    def includes(self, seed: int, n_languages: int) -> bool:
        return (not self.seeds or seed in self.seeds) and (not self.n_languages or n_languages in self.n_languages)


@dataclass(frozen=True)
class EvalConfig:
    """How a trained encoder is evaluated after a run (`conf/eval/*.yaml`)."""

    enabled: bool
    sets: tuple[str, ...]  # heldout | train | all (parts of the run's data) or a name in `external`
    external: dict[str, ExternalSet]
    languages: tuple[str, ...] | None  # None: every language of each set
    batch_size: int  # texts per encoder forward pass
    max_length: int | None  # None: the run's train.max_length
    precision: str  # fp32 | bf16 | auto: the encoder's forward pass under evaluation (scores are always float32)
    query_chunk: int  # queries scored at once; bounds memory at chunk x pool floats
    curve: CurveConfig
    only: dict[str, SetSubset]  # a set named here is evaluated only on the runs it includes (affordable sweeps)

    def __post_init__(self) -> None:
        for key in ("batch_size", "query_chunk"):
            require_positive_int(getattr(self, key), f"eval.{key}")
        if self.max_length is not None and (not isinstance(self.max_length, int) or self.max_length < 4):
            raise ConfigError(f"eval.max_length must be null or an integer >= 4, got {self.max_length!r}")
        require_choice(self.precision, "eval.precision", PRECISIONS + ("auto",))
        if self.enabled and not self.sets:
            raise ConfigError("eval.sets must name at least one evaluation set when eval.enabled is true")
        known = DATA_PARTS + tuple(self.external)
        unknown = [s for s in self.sets if s not in known]
        if unknown:
            raise ConfigError(f"eval.sets: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
        if len(set(self.sets)) != len(self.sets):
            raise ConfigError(f"eval.sets must not repeat a name, got {list(self.sets)}")
        if self.languages is not None and not self.languages:
            raise ConfigError("eval.languages must be null or a non-empty list of language codes")
        stray = sorted(set(self.only) - set(self.sets))
        if stray:
            raise ConfigError(f"eval.only names {', '.join(stray)}, which eval.sets does not evaluate")
