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
from transformers import BertConfig, BertModel, PreTrainedModel, XLMRobertaConfig, XLMRobertaModel

from bench.errors import ConfigError
from bench.models.pretrained import load_pretrained_encoder

ARCHITECTURES = {"bert": (BertConfig, BertModel), "xlm-roberta": (XLMRobertaConfig, XLMRobertaModel)}
POOLINGS = ("cls", "mean")
ARCHITECTURE_KEYS = ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_position_embeddings", "type_vocab_size")


@dataclass(frozen=True)
class ModelConfig:
    """A `conf/model/*.yaml` preset, validated. With `pretrained`, architecture keys may be null
    (read from the checkpoint); a value that is set must agree with the checkpoint."""

    name: str
    pretrained: str | None  # null: random init; a hub name, a local directory, or builtin:<name> (bench.models.pretrained)
    arch: str | None
    hidden_size: int | None
    num_layers: int | None
    num_heads: int | None
    intermediate_size: int | None
    max_position_embeddings: int | None
    type_vocab_size: int | None
    vocab_size: int | None  # null: the tokenizer's size; presets pin the published size
    pad_token_id: int | None
    dropout: float
    attn_implementation: str
    pooling: str  # cls | mean: how token states become one sentence embedding
    query_prefix: str  # prepended to every question, in training and evaluation alike (E5: "query: ")
    passage_prefix: str  # prepended to every candidate sentence (E5: "passage: ")
    freeze_embeddings: bool  # word embeddings are not trained (no gradient, no optimizer state)
    trim_vocabulary: bool  # keep only the embedding rows the run's texts use (ids remapped, rows bit-identical)

    def __post_init__(self) -> None:
        if self.arch is not None and self.arch not in ARCHITECTURES:
            raise ConfigError(f"model.arch must be one of {', '.join(ARCHITECTURES)}, got {self.arch!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"model.pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        for key in ARCHITECTURE_KEYS:
            value = getattr(self, key)
            if value is None and not self.pretrained:
                raise ConfigError(f"model.{key} must be set for a randomly initialised model (model.pretrained is null)")
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"model.{key} must be a positive integer, got {value!r}")
        if self.hidden_size and self.num_heads and self.hidden_size % self.num_heads:
            raise ConfigError(f"model.hidden_size ({self.hidden_size}) must be divisible by model.num_heads ({self.num_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        for key in ("query_prefix", "passage_prefix"):
            if not isinstance(getattr(self, key), str):
                raise ConfigError(f"model.{key} must be a string (\"\" for none), got {getattr(self, key)!r}")


def build_encoder(cfg: ModelConfig, tokenizer_vocab_size: int, load_weights: bool = True) -> PreTrainedModel:
    """The encoder body (no pooler: pooling is ours, and an unused pooler breaks DDP)."""
    if cfg.pretrained:
        return load_pretrained_encoder(cfg.pretrained, cfg.attn_implementation, load_weights)
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


def check_vocabulary(tokenizer_vocab_size: int, embedding_rows: int, where: str) -> None:
    """A tokenizer whose ids can exceed the embedding table would index rows that do not exist."""
    if tokenizer_vocab_size > embedding_rows:
        raise ConfigError(f"{where}: the tokenizer has {tokenizer_vocab_size:,} tokens but the model only "
                          f"{embedding_rows:,} embedding rows; they do not belong together")


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
