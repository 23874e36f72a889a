"""Sentence embeddings for evaluation: a trained encoder, its tokenizer and its pooling, saved as one directory.

`TextEncoder.encode` tokenizes everything at once (the Rust tokenizer runs in parallel),
sorts texts by token count so each batch is padded only to its own longest text, runs the
model under `torch.inference_mode()` and returns L2-normalised float32 rows in the input
order, so a dot product of two rows is their cosine similarity. With precision "bf16" the forward
pass runs under bfloat16 autocast (2.4x faster for multilingual-e5-small on this project's AMX CPUs);
pooling, normalisation and every score stay float32.

Directory layout written by `save` and read by `load`:
    model/          the encoder's `save_pretrained` output (config + weights)
    tokenizer.json  the `tokenizers` tokenizer
    encoder.json    {"format_version", "model_class", "pooling", "max_length", "query_prefix",
                     "passage_prefix", "tokenizer_name", and "kept_token_ids" for a trimmed vocabulary}
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer
from transformers import PreTrainedModel

from bench.data.tokenizer import RunTokenizer
from bench.errors import DataError
from bench.evaluation.st_export import write_sentence_transformers
from bench.models.encoder import POOLINGS, check_vocabulary, pool
from bench.models.pretrained import quiet_transformers

FORMAT_VERSION = 1
MODEL_CLASSES = ("BertModel", "XLMRobertaModel")
PAD_TOKENS = ("[PAD]", "<pad>")
PRECISIONS = ("fp32", "bf16")


class TextEncoder:
    """A transformer encoder plus tokenizer and pooling: texts in, unit-length embeddings out."""

    def __init__(self, model: PreTrainedModel, tokenizer: RunTokenizer, pooling: str, max_length: int,
                 precision: str = "fp32") -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an integer >= 2, got {max_length!r}")
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit is not None and max_length > limit:
            raise ValueError(f"max_length {max_length} exceeds the model's {limit} position embeddings")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.model = model
        self.precision = precision
        self.pooling = pooling
        self.max_length = max_length
        # A private copy: truncation and padding are set on it, never on the caller's tokenizer.
        backend = Tokenizer.from_str(tokenizer.backend.to_str())
        backend.no_padding()
        backend.enable_truncation(max_length)
        self.tokenizer = replace(tokenizer, backend=backend)
        # Padding positions are masked out; the id only has to be a valid row of the embedding table.
        pad_id = next((i for i in map(backend.token_to_id, PAD_TOKENS) if i is not None), None)
        self.pad_id = pad_id if pad_id is not None else (model.config.pad_token_id or 0)

    def with_max_length(self, max_length: int) -> TextEncoder:
        """The same model and tokenizer, truncating at a different length."""
        return TextEncoder(self.model, self.tokenizer, self.pooling, max_length, self.precision)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def tokenize(self, texts: list[str], kind: str = "passage") -> list[list[int]]:
        """Token ids of the prefixed texts with the tokenizer's template, truncated to max_length."""
        return self.tokenizer.encode(list(texts), kind)

    def encode(self, texts: list[str], batch_size: int = 256, kind: str = "passage") -> torch.Tensor:
        """(len(texts), dim) float32, rows L2-normalised, in the order of `texts`; `kind` picks the prefix."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        ids = self.tokenize(texts, kind)
        out = torch.empty(len(ids), self.dim, dtype=torch.float32)
        # Longest first: the first batch allocates the most, later ones reuse that memory.
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        try:
            autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
            with torch.inference_mode(), autocast:
                for lo in range(0, len(order), batch_size):
                    rows = order[lo : lo + batch_size]
                    input_ids, mask = self._pad([ids[i] for i in rows], device)
                    hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                    pooled = pool(hidden, mask, self.pooling).float()
                    out[torch.tensor(rows)] = torch.nn.functional.normalize(pooled, dim=-1).cpu()
        finally:
            self.model.train(was_training)
        return out

    def _pad(self, batch: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        return input_ids.to(device), mask.to(device)

    def save(self, directory: str | Path) -> Path:
        """Write model/, tokenizer.json and encoder.json into `directory` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.model.save_pretrained(directory / "model")
        self.tokenizer.backend.save(str(directory / "tokenizer.json"))
        meta = {
            "format_version": FORMAT_VERSION,
            "model_class": type(self.model).__name__,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "query_prefix": self.tokenizer.query_prefix,
            "passage_prefix": self.tokenizer.passage_prefix,
            "tokenizer_name": self.tokenizer.name,
        }
        if self.tokenizer.kept is not None:  # a trimmed vocabulary: which tokenizer ids the rows are
            meta["kept_token_ids"] = list(self.tokenizer.kept)
        (directory / "encoder.json").write_text(json.dumps(meta, indent=2) + "\n")
        write_sentence_transformers(self, directory)  # the same directory loads as SentenceTransformer(str(directory))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> TextEncoder:
        """Read a directory written by `save`; problems become one-line DataErrors."""
        directory = Path(directory)
        meta = _read_meta(directory)
        tokenizer_path = directory / "tokenizer.json"
        if not tokenizer_path.is_file() or not (directory / "model").is_dir():
            raise DataError(f"encoder directory {directory} lacks tokenizer.json or model/")
        model_cls = getattr(transformers, meta["model_class"])
        try:
            with quiet_transformers():  # no pooler: pooling is ours, and an unused one would be reported missing
                model = model_cls.from_pretrained(directory / "model", add_pooling_layer=False)
            backend = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # corrupt weights, wrong config, bad JSON: all one line
            raise DataError(f"encoder directory {directory} could not be loaded ({type(exc).__name__}: {exc})") from None
        kept = meta.get("kept_token_ids")
        tokenizer = RunTokenizer(backend, meta.get("tokenizer_name", str(tokenizer_path)), meta.get("query_prefix", ""),
                                 meta.get("passage_prefix", ""), tuple(kept) if kept is not None else None)  # fmt: skip
        check_vocabulary(tokenizer.vocab_size, model.get_input_embeddings().num_embeddings, f"encoder directory {directory}")
        model.eval()
        return cls(model, tokenizer, meta["pooling"], int(meta["max_length"]))


def _read_meta(directory: Path) -> dict:
    path = directory / "encoder.json"
    if not path.is_file():
        raise DataError(f"not an encoder directory (no encoder.json): {directory}")
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc})") from None
    missing = [k for k in ("model_class", "pooling", "max_length") if k not in meta]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}")
    if meta["model_class"] not in MODEL_CLASSES:
        raise DataError(f"{path}: model_class must be one of {', '.join(MODEL_CLASSES)}, got {meta['model_class']!r}")
    if meta.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise DataError(f"{path} has format_version {meta.get('format_version')}, this code reads {FORMAT_VERSION}")
    return meta
