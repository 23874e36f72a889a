"""The `eval` config group (`conf/eval/*.yaml`), validated once into a typed `EvalConfig`.

Errors name the override key (`eval.batch_size must be a positive integer, got 0`). The
held-out fraction is not here: it belongs to the data (`data.heldout_fraction`), so that
training and evaluation can never disagree about which articles were held out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from bench.errors import ConfigError

EVAL_SET_NAMES = ("xquad-r", "xquad-r-heldout", "xquad-r-train", "mlqa-r")


@dataclass(frozen=True)
class EvalConfig:
    """How a trained encoder is evaluated after a run."""

    enabled: bool = True
    datasets: tuple[str, ...] = ("xquad-r-heldout", "mlqa-r")
    languages: tuple[str, ...] | None = None  # None: every language of each evaluation set
    batch_size: int = 256  # texts per encoder forward pass
    max_length: int | None = None  # None: the encoder's own (training) max_length
    query_chunk: int = 1024  # queries scored at once; bounds memory at chunk x pool floats

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"eval.enabled must be true or false, got {self.enabled!r}")
        for key in ("batch_size", "query_chunk"):
            _positive_int(getattr(self, key), f"eval.{key}")
        if self.max_length is not None:
            _positive_int(self.max_length, "eval.max_length")
            if self.max_length < 4:
                raise ConfigError(f"eval.max_length must be at least 4 tokens, got {self.max_length}")
        if not self.datasets and self.enabled:
            raise ConfigError("eval.datasets must name at least one evaluation set when eval.enabled is true")
        unknown = [d for d in self.datasets if d not in EVAL_SET_NAMES]
        if unknown:
            raise ConfigError(f"eval.datasets: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(EVAL_SET_NAMES)}")
        if len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"eval.datasets must not repeat a name, got {list(self.datasets)}")
        if {"xquad-r", "xquad-r-heldout"} <= set(self.datasets):
            raise ConfigError("eval.datasets: xquad-r and xquad-r-heldout would both fill the eval_xquad_r_* columns; pick one")
        if self.languages is not None:
            if not self.languages or not all(isinstance(code, str) and code.isalpha() for code in self.languages):
                raise ConfigError(f"eval.languages must be null or a non-empty list of language codes, got {list(self.languages)}")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> EvalConfig:
        """Validate a plain mapping (e.g. `OmegaConf.to_container(cfg.eval)`); unknown keys are errors."""
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        extra = sorted(set(raw) - known)
        if extra:
            raise ConfigError(f"eval: unknown key(s) {', '.join('eval.' + k for k in extra)}")
        for key in ("datasets", "languages"):
            value = raw.get(key)
            if isinstance(value, str):
                raise ConfigError(f"eval.{key} must be a list, got the string {value!r}")
            if value is not None and key in raw:
                if not isinstance(value, (list, tuple)):
                    raise ConfigError(f"eval.{key} must be a list, got {value!r}")
                raw[key] = tuple(value)
        return cls(**raw)


def _positive_int(value: Any, key: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")
