import math

import torch
from transformers import BertConfig, BertModel

from bench.measure.memory import TensorMemoryTracker
from bench.training.objective import IGNORE_INDEX, ContrastiveRetriever, MaskedLanguageModel, info_nce


def test_info_nce_matches_a_hand_computed_case():
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    passages = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # query 0: scores (1, 1)/t -> loss log 2; query 1: scores (0, 0) -> loss log 2
    assert math.isclose(info_nce(queries, passages, 0.5).item(), math.log(2), rel_tol=1e-6)
    perfect = info_nce(torch.eye(3), torch.eye(3), 0.01).item()
    assert perfect < 1e-6


def _encoder(vocab=30000):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertModel(config, add_pooling_layer=False)


def _mlm_peak(n_masked: int, vocab: int = 30000) -> int:
    model = MaskedLanguageModel(_encoder(vocab))
    input_ids = torch.randint(5, vocab, (8, 64))
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels.view(-1)[:n_masked] = input_ids.view(-1)[:n_masked]
    mask = torch.ones_like(input_ids)
    with TensorMemoryTracker(model) as tracker:
        model(input_ids, mask, labels).backward()
    return tracker.peak.activation_bytes + tracker.peak.grad_bytes


def test_mlm_logits_memory_grows_with_masked_tokens_not_all_tokens():
    vocab, tokens = 30000, 8 * 64
    few, more = _mlm_peak(20, vocab), _mlm_peak(40, vocab)
    all_token_logits = tokens * vocab * 4
    growth = more - few
    # 20 more masked rows of fp32 logits (and their gradient) cost a small multiple of 20 x vocab x 4 bytes
    assert 20 * vocab * 4 <= growth <= 6 * 20 * vocab * 4
    assert more - _encoder_grad_bytes(vocab) < all_token_logits


def _encoder_grad_bytes(vocab):
    return sum(p.numel() * 4 for p in MaskedLanguageModel(_encoder(vocab)).parameters())


def test_dual_encoder_shares_weights_and_learns():
    torch.manual_seed(0)
    model = ContrastiveRetriever(_encoder(100), "cls", temperature=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    q = torch.randint(5, 100, (8, 6))
    batch = dict(query_ids=q, query_mask=torch.ones_like(q), passage_ids=q.clone(), passage_mask=torch.ones_like(q))
    first = model(**batch).item()
    for _ in range(20):
        loss = model(**batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert loss.item() < first * 0.5
