"""Encoders from config (random init, the offline default) or from pretrained weights by name or path.

Compute and memory do not depend on weight values, so the real architectures (`mbert-base`,
`xlmr-base`, `labse`) are built from their published configurations with random init and
profile exactly like the pretrained models. `pretrained:` loads real weights for users who
have them (a hub name with a populated cache, or a local directory).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModel, BertConfig, BertModel, PreTrainedModel, XLMRobertaConfig, XLMRobertaModel

from bench.errors import ConfigError

ARCHITECTURES = {"bert": (BertConfig, BertModel), "xlm-roberta": (XLMRobertaConfig, XLMRobertaModel)}
POOLINGS = ("cls", "mean")


@dataclass(frozen=True)
class ModelConfig:
    """A `conf/model/*.yaml` preset, validated."""

    name: str
    arch: str = "bert"
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 512
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    vocab_size: int | None = None  # None: the tokenizer's size; presets pin the published size
    pad_token_id: int = 0
    dropout: float = 0.1
    attn_implementation: str = "sdpa"
    pooling: str = "cls"
    pretrained: str | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"model.arch must be one of {', '.join(ARCHITECTURES)}, got {self.arch!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"model.pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        for key in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_position_embeddings"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"model.{key} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"model.hidden_size ({self.hidden_size}) must be divisible by model.num_heads ({self.num_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")


def build_encoder(cfg: ModelConfig, tokenizer_vocab_size: int) -> PreTrainedModel:
    """The encoder body (no pooler: pooling is ours, and an unused pooler breaks DDP)."""
    if cfg.pretrained:
        return load_pretrained_encoder(cfg.pretrained, cfg.attn_implementation)
    vocab_size = cfg.vocab_size or tokenizer_vocab_size
    if vocab_size < tokenizer_vocab_size:
        raise ConfigError(f"model.vocab_size ({vocab_size}) is smaller than the tokenizer's ({tokenizer_vocab_size})")
    config_cls, model_cls = ARCHITECTURES[cfg.arch]
    config = config_cls(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        type_vocab_size=cfg.type_vocab_size,
        pad_token_id=cfg.pad_token_id,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
    )
    config._attn_implementation = cfg.attn_implementation
    return model_cls(config, add_pooling_layer=False)


def load_pretrained_encoder(name_or_path: str, attn_implementation: str = "sdpa") -> PreTrainedModel:
    try:
        return AutoModel.from_pretrained(name_or_path, add_pooling_layer=False, attn_implementation=attn_implementation)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model.pretrained={name_or_path!r} could not be loaded ({str(exc).splitlines()[0]})") from None


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Sentence embedding from token states: the [CLS] state, or the mask-aware mean."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class MaskedLMHead(nn.Module):
    """BERT's MLM head (transform + decoder tied to the word embeddings), applied to masked positions only."""

    def __init__(self, encoder: PreTrainedModel) -> None:
        super().__init__()
        config = encoder.config
        self.transform = nn.Sequential(
            nn.Linear(config.hidden_size, config.hidden_size), nn.GELU(), nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        )
        self.embeddings = encoder.get_input_embeddings()
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, masked_hidden: torch.Tensor) -> torch.Tensor:
        # Logits are (n_masked, vocab): memory grows with masked tokens, not all tokens.
        return nn.functional.linear(self.transform(masked_hidden), self.embeddings.weight, self.bias)
