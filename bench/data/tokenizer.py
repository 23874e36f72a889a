"""Shared multilingual subword vocabulary (WordPiece, as mBERT), trained with `tokenizers` and cached by content.

Policies (recorded per run as `tokenizer_policy`):
  shared-all       one vocabulary trained on every language of the dataset, whatever subset a
                   run trains on: vocabulary size and coverage stay out of the comparison.
  selected-fixed   trained on the run's languages only, fixed vocabulary size.
  selected-scaled  trained on the run's languages only, size = per-language budget x languages
                   (the mBERT situation: the embedding table grows with the language count).
  pretrained       the pretrained model's own tokenizer (bench.models.pretrained), never a WordPiece.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from bench import PROJECT_ROOT
from bench.errors import ConfigError
from bench.models.encoder import ModelConfig
from bench.models.pretrained import load_pretrained_tokenizer

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
UNK_TOKENS = ("[UNK]", "<unk>")  # WordPiece, SentencePiece
ALL_SPECIAL_TOKENS = SPECIAL_TOKENS + ("<s>", "</s>", "<pad>", "<unk>", "<mask>")
POLICIES = ("shared-all", "selected-fixed", "selected-scaled", "pretrained")
# Long enough for a whole unsegmented Thai or Chinese-free sentence; BERT's default of 100
# characters would turn most Thai sentences into one [UNK].
MAX_WORD_CHARS = 1000


@dataclass(frozen=True)
class TokenizerConfig:
    policy: str
    vocab_size: int | None  # the WordPiece policies' sizes and cache; null for tokenizer=pretrained
    per_language_vocab: int | None
    min_frequency: int | None
    cache_dir: str | None
    shipped_dir: str | None  # read-only vocabularies committed with the repo

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"tokenizer.policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        for key in ("vocab_size", "per_language_vocab", "min_frequency"):
            if self.policy == "pretrained":
                if getattr(self, key) is not None:
                    raise ConfigError(f"tokenizer.{key} does not apply to tokenizer=pretrained (the model's own vocabulary)")
            elif not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ConfigError(f"tokenizer.{key} must be a positive integer, got {getattr(self, key)!r}")

    def target_size(self, n_languages: int) -> int:
        return self.per_language_vocab * n_languages if self.policy == "selected-scaled" else self.vocab_size


def _empty_wordpiece() -> Tokenizer:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=MAX_WORD_CHARS))
    # Cased, accents kept, CJK characters split apart: mBERT's multilingual cased preprocessing.
    tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def _add_bert_template(tokenizer: Tokenizer) -> None:
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )


def train_wordpiece(texts: list[str], vocab_size: int, min_frequency: int) -> Tokenizer:
    tokenizer = _empty_wordpiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    _add_bert_template(tokenizer)
    return tokenizer


def content_key(texts: list[str], vocab_size: int, min_frequency: int) -> str:
    """Cache key: the training texts themselves plus every setting that shapes the vocabulary."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"v": 1, "vocab": vocab_size, "min_freq": min_frequency, "max_word": MAX_WORD_CHARS}).encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def _project_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else PROJECT_ROOT / path


def cached_wordpiece(texts: list[str], vocab_size: int, min_frequency: int, cache_dir: str | Path,
                     shipped_dir: str | Path | None = None) -> Tokenizer:  # fmt: skip
    """Train once per distinct corpus and settings; later runs load the saved file.

    WordPiece training is not deterministic across processes (huggingface/tokenizers#1794: the same
    corpus gave vocabularies 88 tokens apart), and a different vocabulary changes batch shapes and so
    memory. The default vocabulary is therefore shipped in `shipped_dir` and looked up first, so every
    machine measures with the same one; other vocabularies are trained once and cached.
    """
    name = f"wordpiece-{content_key(texts, vocab_size, min_frequency)}.json"
    directory = _project_path(cache_dir)
    for candidate in ([_project_path(shipped_dir) / name] if shipped_dir else []) + [directory / name]:
        if candidate.is_file():
            return Tokenizer.from_file(str(candidate))
    path = directory / name
    tokenizer = train_wordpiece(texts, vocab_size, min_frequency)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{id(tokenizer)}")
    tokenizer.save(str(tmp))
    tmp.replace(path)  # atomic: parallel runs may race to write the same vocabulary
    return tokenizer


@dataclass(frozen=True)
class RunTokenizer:
    """A run's tokenizer: the `tokenizers` object, where it came from, and the model's text prefixes.

    Training collation and evaluation both tokenise through `encode`, so a prefix (E5's "query: ")
    applies identically in both."""

    backend: Tokenizer
    name: str  # wordpiece-<content key>, or the pretrained model it belongs to
    query_prefix: str = ""
    passage_prefix: str = ""
    kept: tuple[int, ...] | None = None  # model.trim_vocabulary: the backend ids kept, in new-id order

    @property
    def vocab_size(self) -> int:
        return len(self.kept) if self.kept is not None else self.backend.get_vocab_size(with_added_tokens=True)

    @property
    def unk_id(self) -> int | None:
        """The unknown token's id, as `encode` returns ids."""
        backend_unk = next((i for i in map(self.backend.token_to_id, UNK_TOKENS) if i is not None), None)
        return backend_unk if backend_unk is None or self.kept is None else self._remap[backend_unk]

    def token_id(self, token: str) -> int | None:
        """The id `encode` gives `token` (after trimming's remap); None if the tokenizer lacks it."""
        backend_id = self.backend.token_to_id(token)
        return backend_id if backend_id is None or self.kept is None else int(self._remap[backend_id])

    @functools.cached_property
    def _remap(self) -> np.ndarray:
        """Backend id -> kept id; ids outside the kept vocabulary become the unknown token."""
        backend_unk = next(i for i in map(self.backend.token_to_id, UNK_TOKENS) if i is not None)
        table = np.full(self.backend.get_vocab_size(with_added_tokens=True), -1, dtype=np.int64)
        table[list(self.kept)] = np.arange(len(self.kept))
        table[table < 0] = table[backend_unk]
        return table

    def trimmed(self, texts_by_kind: dict[str, list[str]]) -> RunTokenizer:
        """The same tokenizer over only the ids these texts (and the special tokens) use."""
        used = {i for kind, texts in texts_by_kind.items() for ids in self.encode(texts, kind) for i in ids}
        special = {self.backend.token_to_id(t) for t in ALL_SPECIAL_TOKENS} - {None}
        return replace(self, kept=tuple(sorted(used | special)))

    def prefix(self, kind: str) -> str:
        return {"query": self.query_prefix, "passage": self.passage_prefix}[kind]

    def encode(self, texts: list[str], kind: str, add_special_tokens: bool = True) -> list[list[int]]:
        """Token ids of `texts` as `kind` ("query" or "passage"): prefix, then the tokenizer's template."""
        prefix = self.prefix(kind)
        encodings = self.backend.encode_batch([prefix + t for t in texts], add_special_tokens=add_special_tokens)
        if self.kept is None:
            return [e.ids for e in encodings]
        return [self._remap[e.ids].tolist() if e.ids else [] for e in encodings]


def unknown_token_rate(tokenizer: RunTokenizer, texts: list[str]) -> float:
    """Fraction of the texts' tokens that are the unknown token (no prefix, no special tokens)."""
    if tokenizer.unk_id is None:
        return 0.0
    encodings = tokenizer.backend.encode_batch(texts, add_special_tokens=False)
    total = sum(len(e.ids) for e in encodings)
    unknown = sum(e.ids.count(tokenizer.unk_id) for e in encodings)
    return unknown / total if total else 0.0


def tokenizer_for_run(cfg: TokenizerConfig, model: ModelConfig, texts_by_lang: dict[str, list[str]],
                      languages: tuple[str, ...]) -> RunTokenizer:  # fmt: skip
    """Apply the policy: the pretrained model's own tokenizer, or which languages' text a WordPiece
    vocabulary is trained on and how large it is."""
    if cfg.policy == "pretrained":
        backend, name = load_pretrained_tokenizer(model.pretrained), model.pretrained
    else:
        source = tuple(texts_by_lang) if cfg.policy == "shared-all" else languages
        texts = [t for lang in source for t in texts_by_lang[lang]]
        size = cfg.target_size(len(languages))
        backend = cached_wordpiece(texts, size, cfg.min_frequency, cfg.cache_dir, cfg.shipped_dir)
        name = f"wordpiece-{content_key(texts, size, cfg.min_frequency)}"
    return RunTokenizer(backend, name, model.query_prefix, model.passage_prefix)


def unknown_rates(tokenizer: RunTokenizer, texts_by_lang: dict[str, list[str]]) -> dict[str, float]:
    return {lang: round(unknown_token_rate(tokenizer, texts), 6) for lang, texts in texts_by_lang.items()}
