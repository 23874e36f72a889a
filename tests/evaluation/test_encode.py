"""TextEncoder: length-sorted batching gives the same embeddings, save/load round trip, tokenizer untouched."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertModel

from bench.data.tokenizer import RunTokenizer
from bench.evaluation.encode import TextEncoder
from bench.errors import ConfigError, DataError

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "short",
    "Le renard brun rapide saute par-dessus le chien paresseux, encore et encore et encore.",
    "狐狸跳过了懒狗。",
    "",
]


@pytest.fixture(scope="module")
def tokenizer() -> RunTokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"], show_progress=False)
    tok.train_from_iterator(TEXTS * 3, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))]
    )
    return RunTokenizer(tok, "test")


def tiny_bert(vocab_size: int) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    return BertModel(config, add_pooling_layer=False)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_batched_equals_one_at_a_time(tokenizer, pooling):
    encoder = TextEncoder(tiny_bert(tokenizer.vocab_size), tokenizer, pooling, max_length=16)
    batched = encoder.encode(TEXTS, batch_size=4)
    alone = torch.cat([encoder.encode([t], batch_size=1) for t in TEXTS])
    assert batched.dtype == torch.float32 and batched.shape == (len(TEXTS), 32)
    assert torch.allclose(batched, alone, atol=1e-5)  # padding and sorting change nothing
    assert torch.allclose(batched.norm(dim=1), torch.ones(len(TEXTS)))


def test_bf16_precision_autocasts_the_forward_pass_and_keeps_float32_rows(tokenizer):
    model = tiny_bert(tokenizer.vocab_size)
    exact = TextEncoder(model, tokenizer, "mean", max_length=16).encode(TEXTS, batch_size=4)
    bf16 = TextEncoder(model, tokenizer, "mean", max_length=16, precision="bf16")
    rows = bf16.encode(TEXTS, batch_size=4)
    assert rows.dtype == torch.float32 and torch.allclose(rows.norm(dim=1), torch.ones(len(TEXTS)))
    assert not torch.equal(rows, exact)  # the forward pass really ran in bfloat16 ...
    assert (rows * exact).sum(dim=1).min() > 0.99  # ... and stays close to float32 (cosine per text)
    assert bf16.with_max_length(8).precision == "bf16"
    with pytest.raises(ValueError, match="precision"):
        TextEncoder(model, tokenizer, "mean", 16, precision="fp16")


def test_tokens_are_truncated_and_wrapped(tokenizer):
    encoder = TextEncoder(tiny_bert(tokenizer.vocab_size), tokenizer, "cls", max_length=8)
    ids = encoder.tokenize(TEXTS)
    assert max(len(i) for i in ids) == 8
    assert all(i[0] == tokenizer.backend.token_to_id("[CLS]") and i[-1] == tokenizer.backend.token_to_id("[SEP]") for i in ids)


def test_callers_tokenizer_and_mode_are_left_alone(tokenizer):
    model = tiny_bert(tokenizer.vocab_size).train()
    before = tokenizer.backend.to_str()
    encoder = TextEncoder(model, tokenizer, "mean", max_length=8)
    encoder.encode(TEXTS, batch_size=2)
    assert tokenizer.backend.to_str() == before and tokenizer.backend.truncation is None
    assert model.training  # restored after encoding in eval mode


def test_save_load_round_trip(tokenizer, tmp_path):
    encoder = TextEncoder(tiny_bert(tokenizer.vocab_size), tokenizer, "mean", max_length=12)
    encoder.save(tmp_path / "enc")
    meta = json.loads((tmp_path / "enc" / "encoder.json").read_text())
    assert meta == {"format_version": 1, "model_class": "BertModel", "pooling": "mean", "max_length": 12,
                    "query_prefix": "", "passage_prefix": "", "tokenizer_name": "test"}  # fmt: skip
    loaded = TextEncoder.load(tmp_path / "enc")
    assert (loaded.pooling, loaded.max_length) == ("mean", 12)
    assert torch.equal(loaded.encode(TEXTS, 3), encoder.encode(TEXTS, 3))


def test_prefixes_apply_by_kind_and_survive_saving(tokenizer, tmp_path):
    prefixed = replace(tokenizer, query_prefix="query: ", passage_prefix="passage: ")
    encoder = TextEncoder(tiny_bert(tokenizer.vocab_size), prefixed, "mean", max_length=32)
    assert encoder.tokenize(["fox"], "query") == [tokenizer.encode(["query: fox"], "passage")[0]]
    assert encoder.tokenize(["fox"], "passage") == [tokenizer.encode(["passage: fox"], "query")[0]]
    encoder.save(tmp_path / "enc")
    loaded = TextEncoder.load(tmp_path / "enc")
    assert torch.equal(loaded.encode(TEXTS, 3, kind="query"), encoder.encode(TEXTS, 3, kind="query"))
    assert not torch.equal(encoder.encode(TEXTS, 3, kind="query"), encoder.encode(TEXTS, 3, kind="passage"))


def test_a_tokenizer_larger_than_the_embedding_table_is_refused(tokenizer, tmp_path):
    TextEncoder(tiny_bert(tokenizer.vocab_size - 10), tokenizer, "cls", 8).save(tmp_path / "enc")
    with pytest.raises(ConfigError, match=r"the tokenizer has \d+ tokens but the model only \d+ embedding rows"):
        TextEncoder.load(tmp_path / "enc")


def test_bad_inputs(tokenizer, tmp_path):
    model = tiny_bert(tokenizer.vocab_size)
    with pytest.raises(ValueError, match="pooling"):
        TextEncoder(model, tokenizer, "max", 8)
    with pytest.raises(ValueError, match="position embeddings"):
        TextEncoder(model, tokenizer, "cls", 65)
    with pytest.raises(DataError, match="encoder.json"):
        TextEncoder.load(tmp_path)
    (tmp_path / "encoder.json").write_text(json.dumps({"model_class": "GPT2Model", "pooling": "cls", "max_length": 8}))
    with pytest.raises(DataError, match="model_class"):
        TextEncoder.load(tmp_path)
