"""A pretrained encoder is its weights, its tokenizer and its conventions (bench.models.pretrained).

A tiny BERT is saved with a small tokenizer of its own, in the standard transformers layout; a run and
`bench.evaluate` must tokenise exactly as Hugging Face does and pool exactly the HF forward pass.
"""

from __future__ import annotations

import json

import pytest
import torch
from accelerate.state import AcceleratorState
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoModel, AutoTokenizer, BertConfig, BertForMaskedLM, BertModel, PreTrainedTokenizerFast

from bench import evaluate
from bench.config import plan_runs
from bench.errors import ConfigError
from bench.models.pretrained import load_mlm_head_state
from bench.run import run_and_record
from bench.stages import build_objective, prepare_data, zero_shot_encoder
from tests.conftest import quick_run

TEXTS = ["What is the capital of France?", "Paris is the capital and largest city of France.",
         "Wer schrieb den Faust?", "Goethe schrieb Faust.", "Кто написал роман?", "东京是日本的首都。"]  # fmt: skip
QUICK = [*quick_run(steps=3, batch_size=4, warmup=1, max_length=32), "profiler.measure_energy=false", "device=cpu"]


pytestmark = pytest.mark.usefixtures("fresh_accelerator")


def small_tokenizer(texts: list[str], size: int) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=False)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=size, special_tokens=specials, show_progress=False))
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", backend.token_to_id("[CLS]")), ("[SEP]", backend.token_to_id("[SEP]"))])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)  # fmt: skip


def save_checkpoint(directory, with_mlm_head: bool = False, extra_vocab: int = 0):
    """A tiny BERT and its own tokenizer, trained on XQuAD-R text so a run's data is mostly in vocabulary."""
    from bench.data.lareqa import load_lareqa

    data = load_lareqa("xquad-r", "data/lareqa/xquad-r", ("en", "de"))
    corpus = [c.text for d in data.by_lang.values() for c in d.candidates[:400]] + TEXTS
    tokenizer = small_tokenizer(corpus, 600)
    config = BertConfig(vocab_size=tokenizer.backend_tokenizer.get_vocab_size() + extra_vocab, hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    torch.manual_seed(0)
    model = BertForMaskedLM(config) if with_mlm_head else BertModel(config, add_pooling_layer=False)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return tokenizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-bert")
    return directory, save_checkpoint(directory)


def config(directory, *overrides, tmp_path=None):
    results = [f"results.dir={tmp_path}"] if tmp_path else []
    (planned,) = plan_runs("config", ["model=pretrained", f"model.pretrained={directory}", "languages=[en,de]",
                                      "eval.languages=[en,de]", *QUICK, *overrides, *results], sweep=False)  # fmt: skip
    return planned.config


def hf_embedding(directory, tokenizer, text: str) -> torch.Tensor:
    model = AutoModel.from_pretrained(directory, add_pooling_layer=False).eval()
    inputs = tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)[0]


def test_a_run_tokenises_with_the_checkpoints_own_tokenizer(checkpoint, tmp_path):
    directory, tokenizer = checkpoint
    cfg = config(directory, "strategy=crosslingual", tmp_path=tmp_path)
    prepared = prepare_data(cfg)
    assert prepared.tokenizer.vocab_size == len(tokenizer) and prepared.tokenizer.name == str(directory)
    for key in list(prepared.pairs.queries)[:50]:
        expected = tokenizer(prepared.pairs.queries[key], truncation=True, max_length=32)["input_ids"]
        assert prepared.tokenized.queries[key] == expected
    record = run_and_record(cfg)
    assert record.status == "ok", record.error_message
    assert (record.tokenizer_policy, record.tokenizer_name, record.vocab_size) == ("pretrained", str(directory), len(tokenizer))
    assert record.embedding_rows == len(tokenizer) and json.loads(record.unk_rate_by_lang).keys() == {"en", "de"}
    assert record.eval_heldout_map_mono is not None


def test_zero_shot_evaluation_pools_exactly_the_hf_forward_pass(checkpoint, tmp_path, capsys):
    directory, tokenizer = checkpoint
    encoder = zero_shot_encoder(config(directory))
    for text in TEXTS:
        assert encoder.tokenize([text], "query") == [tokenizer(text)["input_ids"]]
        assert torch.equal(encoder.encode([text], batch_size=1, kind="query")[0], hf_embedding(directory, tokenizer, text))
    code = evaluate.main(["model=pretrained", f"model.pretrained={directory}", "eval.languages=[en]", "eval.max_length=32",
                          "--out", str(tmp_path)])
    assert code == 0 and "xquad-r-heldout" in capsys.readouterr().out
    assert json.loads((tmp_path / "summary.json").read_text())["encoder"] == "model=pretrained (zero-shot)"


def test_prefixes_apply_in_training_and_evaluation_alike(checkpoint):
    directory, tokenizer = checkpoint
    cfg = config(directory, "model.query_prefix='query: '", "model.passage_prefix='passage: '")
    prepared = prepare_data(cfg)
    key = next(iter(prepared.pairs.queries))
    assert prepared.tokenized.queries[key] == tokenizer("query: " + prepared.pairs.queries[key], truncation=True,
                                                        max_length=32)["input_ids"]  # fmt: skip
    assert prepared.tokenized.passages[key] == tokenizer("passage: " + prepared.pairs.passages[key], truncation=True,
                                                         max_length=32)["input_ids"]  # fmt: skip
    encoder = zero_shot_encoder(cfg)
    assert encoder.tokenize(["x"], "query") == [tokenizer("query: x")["input_ids"]]
    assert encoder.tokenize(["x"], "passage") == [tokenizer("passage: x")["input_ids"]]


def test_a_tokenizer_larger_than_the_embedding_table_is_refused_before_anything_runs(tmp_path):
    from bench.data.lareqa import load_lareqa

    save_checkpoint(tmp_path / "small")
    data = load_lareqa("xquad-r", "data/lareqa/xquad-r", ("en", "de"))
    bigger = small_tokenizer([c.text for d in data.by_lang.values() for c in d.candidates], 1200)
    assert len(bigger) > 600
    bigger.save_pretrained(tmp_path / "small")  # another, larger tokenizer next to the weights
    with pytest.raises(ConfigError, match=r"model=pretrained: the tokenizer has [\d,]+ tokens but the model only [\d,]+ embedding rows"):
        prepare_data(config(tmp_path / "small"))


def test_a_preset_value_that_disagrees_with_the_checkpoint_is_refused(checkpoint):
    directory, _ = checkpoint
    cfg = config(directory, "model.hidden_size=128")
    with pytest.raises(ConfigError, match=r"model\.hidden_size=128 but the checkpoint .* has 32"):
        build_objective(cfg, prepare_data(cfg))


def test_trimmed_vocabulary_keeps_rows_bit_identical_and_embeddings_equal(checkpoint):
    directory, _ = checkpoint
    full = config(directory)
    trimmed = config(directory, "model.trim_vocabulary=true")
    plain = zero_shot_encoder(full)
    prepared = prepare_data(trimmed)
    kept = prepared.tokenizer.kept
    small = zero_shot_encoder_with(trimmed, prepared)  # the trimmed encoder a run builds
    assert 0 < len(kept) < plain.tokenizer.vocab_size
    rows = plain.model.get_input_embeddings().weight
    assert torch.equal(small.model.get_input_embeddings().weight, rows[list(kept)])
    texts = [q.text for q in prepared.train_split.by_lang["de"].questions[:20]]  # in the kept vocabulary
    assert torch.equal(small.encode(texts, batch_size=1, kind="query"), plain.encode(texts, batch_size=1, kind="query"))


def zero_shot_encoder_with(cfg, prepared):
    from bench.evaluation.encode import TextEncoder

    objective = build_objective(cfg, prepared)
    return TextEncoder(objective.encoder.eval(), prepared.tokenizer, cfg.model.pooling, cfg.train.max_length)


def test_frozen_embeddings_train_nothing_in_the_table(checkpoint, tmp_path):
    directory, _ = checkpoint
    record = run_and_record(config(directory, "model.freeze_embeddings=true", "strategy=hybrid", tmp_path=tmp_path))
    assert record.status == "ok" and record.embeddings_frozen
    assert record.trainable_params == record.model_params - record.embedding_rows * 32
    assert record.peak_optimizer_bytes < 2 * 4 * record.model_params  # no AdamW state for the table


@pytest.mark.parametrize("with_head", [True, False])
def test_mbert_continues_masked_lm_with_the_checkpoints_head_where_it_has_one(with_head, tmp_path):
    save_checkpoint(tmp_path / "ckpt", with_mlm_head=with_head)
    cfg = config(tmp_path / "ckpt", "strategy=mbert", tmp_path=tmp_path / "results")
    objective = build_objective(cfg, prepare_data(cfg))
    head = load_mlm_head_state(str(tmp_path / "ckpt"))
    assert (head is not None) == with_head
    if with_head:
        assert torch.equal(objective.head.bias, head["bias"]) and torch.equal(objective.head.transform[0].weight, head["transform.0.weight"])
        assert objective.record_fields()["mlm_head"].startswith("checkpoint")
    else:
        assert objective.record_fields()["mlm_head"].startswith("new")
    assert objective.head.embeddings.weight is objective.encoder.get_input_embeddings().weight  # tied
    record = run_and_record(cfg)
    assert record.status == "ok" and record.mlm_head == objective.record_fields()["mlm_head"]


def test_hf_checkpoint_round_trips_through_auto_tokenizer(checkpoint):
    directory, tokenizer = checkpoint
    assert AutoTokenizer.from_pretrained(directory)("Paris")["input_ids"] == tokenizer("Paris")["input_ids"]


def test_predict_uses_the_checkpoints_vocabulary_and_equals_a_real_run(checkpoint, tmp_path):
    from bench.predict import predict_memory

    directory, tokenizer = checkpoint
    cfg = config(directory, "strategy=mbert", "eval=none", tmp_path=tmp_path)
    prediction = predict_memory(cfg)
    assert prediction.vocab_size == len(tokenizer)
    AcceleratorState._reset_state(reset_partial_state=True)
    record = run_and_record(cfg)
    assert record.status == "ok" and prediction.peak.total_bytes == record.peak_tensor_bytes
