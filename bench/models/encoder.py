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


def build_encoder(cfg: ModelConfig, tokenizer_vocab_size: int, load_weights: bool = True,
                  kept_rows: tuple[int, ...] | None = None) -> PreTrainedModel:  # fmt: skip
    """The encoder body (no pooler: pooling is ours, and an unused pooler breaks DDP).

    `kept_rows` (model.trim_vocabulary) keeps only those rows of the word embeddings, bit-identical;
    model.freeze_embeddings takes them out of training."""
    encoder = _pretrained(cfg, load_weights) if cfg.pretrained else _random_init(cfg, tokenizer_vocab_size)
    if kept_rows is not None:
        trim_embeddings(encoder, kept_rows)
    if cfg.freeze_embeddings:
        encoder.get_input_embeddings().weight.requires_grad_(False)
    return encoder


def _random_init(cfg: ModelConfig, tokenizer_vocab_size: int) -> PreTrainedModel:
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


# A preset's architecture keys and the checkpoint config attributes they must agree with.
_CHECKPOINT_KEYS = {"hidden_size": "hidden_size", "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
                    "intermediate_size": "intermediate_size", "max_position_embeddings": "max_position_embeddings",
                    "type_vocab_size": "type_vocab_size", "vocab_size": "vocab_size", "pad_token_id": "pad_token_id",
                    "arch": "model_type"}  # fmt: skip


def _pretrained(cfg: ModelConfig, load_weights: bool) -> PreTrainedModel:
    encoder = load_pretrained_encoder(cfg.pretrained, cfg.attn_implementation, cfg.dropout, load_weights)
    for key, attribute in _CHECKPOINT_KEYS.items():
        wanted, actual = getattr(cfg, key), getattr(encoder.config, attribute, None)
        if wanted is not None and wanted != actual:
            raise ConfigError(f"model.{key}={wanted} but the checkpoint {cfg.pretrained!r} has {actual}; set it to null to take the checkpoint's")
    return encoder


def trim_embeddings(encoder: PreTrainedModel, kept_rows: tuple[int, ...]) -> None:
    """Keep only `kept_rows` of the word embeddings, in that order (row i of the new table is row
    kept_rows[i] of the old, bit for bit); the tokenizer remaps ids the same way."""
    old = encoder.get_input_embeddings()
    index = torch.tensor(kept_rows, dtype=torch.long, device=old.weight.device)
    new = nn.Embedding(len(kept_rows), old.embedding_dim, device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(old.weight.index_select(0, index))
    encoder.set_input_embeddings(new)
    encoder.config.vocab_size = len(kept_rows)


def check_vocabulary(tokenizer_vocab_size: int, embedding_rows: int, where: str) -> None:
    """A tokenizer whose ids can exceed the embedding table would index rows that do not exist."""
    if tokenizer_vocab_size > embedding_rows:
        raise ConfigError(f"{where}: the tokenizer has {tokenizer_vocab_size:,} tokens but the model only "
                          f"{embedding_rows:,} embedding rows; they do not belong together")


def count_parameters(module: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Sentence embedding from token states: the [CLS] state, or the mask-aware mean."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class MaskedLMHead(nn.Module):
    """BERT's MLM head (transform + decoder tied to the word embeddings), applied to masked positions only.

    With `state` (a checkpoint's own head, bench.models.pretrained.load_mlm_head_state) its transform
    and bias continue from the checkpoint; otherwise they start fresh and only the decoder, tied to the
    embeddings, is pretrained. `source` records which."""

    def __init__(self, encoder: PreTrainedModel, state: dict[str, torch.Tensor] | None = None,
                 kept_rows: tuple[int, ...] | None = None) -> None:  # fmt: skip
        super().__init__()
        config = encoder.config
        self.transform = nn.Sequential(
            nn.Linear(config.hidden_size, config.hidden_size), nn.GELU(), nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        )
        self.embeddings = encoder.get_input_embeddings()
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.source = "new, decoder tied to the word embeddings"
        if state is not None:
            if kept_rows is not None:  # the bias follows the trimmed vocabulary
                state = {**state, "bias": state["bias"][torch.tensor(kept_rows)]}
            missing, unexpected = self.load_state_dict(state, strict=False)
            if unexpected or set(missing) != {"embeddings.weight"}:
                raise ConfigError(f"the checkpoint's MLM head does not fit (missing {missing}, unexpected {unexpected})")
            self.source = "checkpoint, decoder tied to the word embeddings"

    def forward(self, masked_hidden: torch.Tensor) -> torch.Tensor:
        # Logits are (n_masked, vocab): memory grows with masked tokens, not all tokens.
        return nn.functional.linear(self.transform(masked_hidden), self.embeddings.weight, self.bias)
