"""bench.evaluation.st_export: a saved encoder directory also loads as a SentenceTransformer that embeds
texts as TextEncoder.encode does.

The file checks and the tokenizer checks need only transformers; the embedding comparisons skip
cleanly without sentence-transformers (pip install -e ".[peers]")."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, BertConfig, BertModel

from bench.data.tokenizer import RunTokenizer, train_wordpiece
from bench.evaluation.encode import TextEncoder
from bench.evaluation.st_export import export_tokenizer
from bench.models.encoder import trim_embeddings
from bench.models.me5_small import TOKENIZER, locate

LANGUAGES = ("en", "de", "ru", "zh", "ar", "th", "hi")  # Latin, Cyrillic, CJK, Arabic, Thai, Devanagari
MIN_COSINE = 0.9999
PREFIXES = {"query_prefix": "query: ", "passage_prefix": "passage: "}


def texts_of(dataset, kind: str, per_language: int | None = None) -> list[str]:
    """Questions ("query") or candidate sentences ("passage"), the first `per_language` of each language."""
    return [item.text for part in dataset.by_lang.values()
            for item in (part.questions if kind == "query" else part.candidates)[:per_language]]  # fmt: skip


def all_texts(dataset) -> dict[str, list[str]]:
    return {kind: texts_of(dataset, kind) for kind in ("query", "passage")}


@pytest.fixture(scope="module")
def sample(xquad) -> list[str]:
    """21 texts, three per language: two questions and one candidate sentence (long ones get truncated)."""
    parts = [xquad.by_lang[lang] for lang in LANGUAGES]
    return [t for part in parts for t in (part.questions[3].text, part.questions[50].text, part.candidates[90].text)]


@pytest.fixture(scope="module")
def wordpiece(xquad) -> RunTokenizer:
    return RunTokenizer(train_wordpiece(texts_of(xquad, "passage", 300), 2000, 2), "wordpiece-test", **PREFIXES)


@pytest.fixture(scope="module")
def me5_tokenizer() -> RunTokenizer:
    """multilingual-e5-small's Unigram tokenizer (250,002 pieces), read from its package: no model built."""
    backend = Tokenizer.from_file(str(locate(TOKENIZER)))
    return RunTokenizer(backend, "me5-small", **PREFIXES)


@pytest.fixture(scope="module")
def wordpiece_trimmed(wordpiece, xquad) -> RunTokenizer:
    """Trimmed as a run trims it: to every XQuAD-R text, as queries and as passages."""
    return wordpiece.trimmed(all_texts(xquad))


@pytest.fixture(scope="module")
def me5_trimmed(me5_tokenizer, xquad) -> RunTokenizer:
    return me5_tokenizer.trimmed(all_texts(xquad))


def tiny_encoder(tokenizer: RunTokenizer, pooling: str, max_length: int = 32) -> TextEncoder:
    """A randomly initialised 1-layer BERT over the tokenizer's ids (trimmed rows when it is trimmed)."""
    torch.manual_seed(0)
    rows = tokenizer.backend.get_vocab_size(with_added_tokens=True)
    config = BertConfig(vocab_size=rows, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    model = BertModel(config, add_pooling_layer=False)
    if tokenizer.kept is not None:
        trim_embeddings(model, tokenizer.kept)
    return TextEncoder(model, tokenizer, pooling, max_length)


def read(path: Path):
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- without sentence-transformers


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_files_name_the_pooling_prompts_and_length(wordpiece, pooling, tmp_path, monkeypatch, sample):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # saving must never import the extra
    encoder = tiny_encoder(wordpiece, pooling, max_length=24)
    directory = encoder.save(tmp_path / "enc")
    modules = read(directory / "modules.json")
    assert [(m["path"], m["type"].rsplit(".", 1)[1]) for m in modules] == [
        ("model", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]  # fmt: skip
    assert (directory / "2_Normalize").is_dir()
    config = read(directory / "config_sentence_transformers.json")
    assert config["prompts"] == {"query": "query: ", "passage": "passage: ", "document": "passage: "}
    assert config["default_prompt_name"] is None and config["similarity_fn_name"] == "cosine"
    assert read(directory / "model" / "sentence_bert_config.json")["max_seq_length"] == 24
    pooling_config = read(directory / "1_Pooling" / "config.json")
    assert pooling_config["word_embedding_dimension"] == 32 and pooling_config["include_prompt"] is True
    assert [k for k, on in pooling_config.items() if k.startswith("pooling_mode_") and on] == [
        {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token"}[pooling]]  # fmt: skip
    tokenizer_config = read(directory / "model" / "tokenizer_config.json")
    assert tokenizer_config["model_max_length"] == 24 and tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert read(directory / "model" / "special_tokens_map.json") == {
        "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}  # fmt: skip
    # The harness's own reading of the directory is unchanged.
    loaded = TextEncoder.load(directory)
    assert torch.equal(loaded.encode(sample, 8, kind="query"), encoder.encode(sample, 8, kind="query"))


@pytest.mark.parametrize("vocabulary", ["wordpiece", "wordpiece-trimmed", "me5-trimmed"])
def test_exported_tokenizer_gives_the_harness_ids_on_held_out_texts(vocabulary, request, mlqa, tmp_path):
    """Trimmed on XQuAD-R, checked on MLQA-R texts (another dataset) that the kept vocabulary covers."""
    tokenizer = request.getfixturevalue(vocabulary.replace("-", "_"))
    encoder = tiny_encoder(tokenizer, "mean", max_length=48)
    encoder.save(tmp_path / "enc")
    exported = AutoTokenizer.from_pretrained(tmp_path / "enc" / "model")
    assert exported.pad_token_id == encoder.pad_id and exported.unk_token_id == tokenizer.unk_id
    assert len(exported) == tokenizer.vocab_size
    kept = set(tokenizer.kept) if tokenizer.kept is not None else None
    for kind in ("query", "passage"):
        held_out = texts_of(mlqa, kind, per_language=150)
        if kept is not None:  # texts whose pieces the trimmed vocabulary has (for the harness: no id became unknown)
            backend_ids = tokenizer.backend.encode_batch([tokenizer.prefix(kind) + t for t in held_out])
            held_out = [t for t, e in zip(held_out, backend_ids) if set(e.ids) <= kept]
        assert len(held_out) >= 150  # a real check (me5: 223 of 7 x 150 passages, 2/3 of the questions)
        ids = exported([tokenizer.prefix(kind) + t for t in held_out], truncation=True, max_length=48)["input_ids"]
        assert ids == encoder.tokenize(held_out, kind)


def test_a_trimmed_vocabulary_that_cannot_be_renumbered_is_named():
    bpe = Tokenizer(models.BPE({"a": 0, "b": 1, "<unk>": 2}, [], unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ValueError, match="a trimmed BPE vocabulary cannot be exported"):
        export_tokenizer(RunTokenizer(bpe, "bpe", kept=(0, 2)))
    with pytest.raises(ValueError, match="must keep its unknown token"):
        export_tokenizer(RunTokenizer(bpe, "bpe", kept=(0, 1)))


def test_evaluate_still_loads_the_directory(wordpiece_trimmed, tmp_path, capsys):
    from bench.evaluate import main

    tiny_encoder(wordpiece_trimmed, "mean").save(tmp_path / "enc")
    assert main(["--encoder", str(tmp_path / "enc"), "eval.languages=[en,de]", "train.threads=1", "--out", str(tmp_path / "eval")]) == 0
    assert read(tmp_path / "eval" / "summary.json")["encoder"] == str(tmp_path / "enc")


# ----------------------------------------------------------------------------- with sentence-transformers


def assert_same_embeddings(encoder: TextEncoder, directory: Path, texts: list[str]) -> dict[str, float]:
    """Per-text cosine of SentenceTransformer(directory) against the harness, queries and passages; the minima."""
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(directory), device="cpu")
    assert model.max_seq_length == encoder.max_length and model.tokenizer.pad_token_id == encoder.pad_id
    worst = {}
    for kind, theirs in (("query", model.encode(texts, prompt_name="query")), ("passage", model.encode(texts, prompt_name="passage")),
                         ("query", model.encode_query(texts)), ("passage", model.encode_document(texts))):  # fmt: skip
        cosine = torch.nn.functional.cosine_similarity(encoder.encode(texts, kind=kind), torch.as_tensor(theirs))
        assert cosine.min() >= MIN_COSINE, f"{kind}: {cosine.tolist()}"
        worst[kind] = min(worst.get(kind, 1.0), float(cosine.min()))
    return worst


@pytest.mark.parametrize("trimmed", [False, True], ids=["full", "trimmed"])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_sentence_transformer_embeds_like_the_harness(wordpiece, wordpiece_trimmed, sample, pooling, trimmed, tmp_path):
    pytest.importorskip("sentence_transformers")
    tokenizer = wordpiece_trimmed if trimmed else wordpiece
    encoder = tiny_encoder(tokenizer, pooling, max_length=32)  # several sample texts are longer: truncation too
    assert max(map(len, tokenizer.encode(sample, "passage"))) > 32
    assert_same_embeddings(encoder, encoder.save(tmp_path / "enc"), sample)


@pytest.mark.slow
def test_trimmed_me5_small_embeds_like_the_harness(sample, tmp_path):
    """multilingual-e5-small (its 4-bit weights, bench.models.me5_small) trimmed to the sample's pieces."""
    pytest.importorskip("sentence_transformers")
    from bench.models.me5_small import ensure_me5_small
    from bench.models.pretrained import load_pretrained_tokenizer

    model = BertModel.from_pretrained(ensure_me5_small(), add_pooling_layer=False)
    tokenizer = RunTokenizer(load_pretrained_tokenizer("builtin:me5-small"), "me5-small", **PREFIXES)
    tokenizer = tokenizer.trimmed({"query": sample, "passage": sample})
    trim_embeddings(model, tokenizer.kept)
    encoder = TextEncoder(model, tokenizer, "mean", max_length=64)
    assert_same_embeddings(encoder, encoder.save(tmp_path / "enc"), sample)
