from dataclasses import replace

import pytest
import torch
from transformers import BertConfig, BertModel

from bench.config import plan_runs
from bench.errors import ConfigError
from bench.models.encoder import build_encoder, count_parameters, pool

# Published sizes in millions, as the model cards and papers state them (with BERT's pooler,
# which our encoders omit because pooling is ours): mBERT 178M, XLM-R base 278M, LaBSE 471M.
PUBLISHED_MILLIONS = {"mbert-base": 178, "xlmr-base": 278, "labse": 471}


def _model_config(name):
    (run,) = plan_runs("config", [f"model={name}"], sweep=False)
    return run.config.model


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PUBLISHED_MILLIONS))
def test_presets_match_published_parameter_counts(name):
    cfg = _model_config(name)
    encoder = build_encoder(cfg, tokenizer_vocab_size=16000)
    pooler = cfg.hidden_size * cfg.hidden_size + cfg.hidden_size
    assert round((count_parameters(encoder) + pooler) / 1e6) == PUBLISHED_MILLIONS[name]


def test_tiny_takes_the_tokenizer_vocabulary():
    encoder = build_encoder(_model_config("tiny"), tokenizer_vocab_size=1234)
    assert encoder.get_input_embeddings().num_embeddings == 1234


def test_preset_vocabulary_smaller_than_tokenizer_is_refused():
    cfg = replace(_model_config("tiny"), vocab_size=100)
    with pytest.raises(ConfigError, match="vocab_size"):
        build_encoder(cfg, tokenizer_vocab_size=500)


def test_pretrained_weights_load_from_a_local_directory(tmp_path):
    torch.manual_seed(0)
    saved = BertModel(BertConfig(vocab_size=99, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32), add_pooling_layer=False)
    saved.save_pretrained(tmp_path)
    (run,) = plan_runs("config", ["model=pretrained", f"model.pretrained={tmp_path}"], sweep=False)
    loaded = build_encoder(run.config.model, tokenizer_vocab_size=99)
    for (name, a), (_, b) in zip(saved.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_missing_pretrained_model_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="could not be loaded"):
        build_encoder(replace(_model_config("tiny"), pretrained=str(tmp_path / "absent"), hidden_size=None), 10)


def test_mean_pooling_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(pool(hidden, mask, "mean"), torch.tensor([[2.0, 2.0]]))
    assert torch.equal(pool(hidden, mask, "cls"), torch.tensor([[1.0, 1.0]]))
