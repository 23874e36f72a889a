import math

import torch

from bench.core.pairs import PairRef
from bench.data.collate import (
    IGNORE_INDEX, SpecialIds, TokenizedPairs, collate_contrastive, collate_masked_lm, collate_masked_lm_at_bound,
    full_length_pairs, mask_tokens, masked_tokens_bound,
)  # fmt: skip
from bench.data.tokenizer import RunTokenizer, train_wordpiece

TEXTS = ["the cat sat on the mat", "a dog ran far away", "der Hund lief weit weg", "die Katze sass auf der Matte"]


def _setup(max_length=16):
    tokenizer = RunTokenizer(train_wordpiece(TEXTS * 5, 120, 1), "test")
    queries = {(0, "en"): TEXTS[0], (1, "en"): TEXTS[1], (0, "de"): TEXTS[3], (1, "de"): TEXTS[2]}
    passages = {k: v + " indeed" for k, v in queries.items()}
    return tokenizer, TokenizedPairs.build(tokenizer, queries, passages, max_length), SpecialIds.of(tokenizer)


def test_contrastive_batch_pads_to_the_longest_text_and_counts_work():
    tokenizer, pairs, ids = _setup()
    refs = [PairRef(0, "en", "de"), PairRef(1, "de", "en")]
    batch = collate_contrastive(refs, pairs, ids)
    q_lens = [len(pairs.queries[(0, "en")]), len(pairs.queries[(1, "de")])]
    assert batch.inputs["query_ids"].shape == (2, max(q_lens))
    assert batch.inputs["query_mask"].sum().item() == sum(q_lens)
    assert batch.padded_tokens == batch.inputs["query_ids"].numel() + batch.inputs["passage_ids"].numel()
    assert batch.real_tokens <= batch.padded_tokens and batch.n_samples == 2


def test_a_plan_tokenizes_only_the_texts_its_batches_use_with_the_same_ids():
    tokenizer, every, _ = _setup()
    queries = {(0, "en"): TEXTS[0], (1, "en"): TEXTS[1], (0, "de"): TEXTS[3], (1, "de"): TEXTS[2]}
    passages = {k: v + " indeed" for k, v in queries.items()}
    plan = [[PairRef(0, "en", "de")], [PairRef(0, "en", "en")]]
    used = TokenizedPairs.build(tokenizer, queries, passages, 16, plan)
    assert set(used.queries) == {(0, "en")} and set(used.passages) == {(0, "de"), (0, "en")}
    assert all(used.queries[k] == every.queries[k] for k in used.queries)
    assert all(used.passages[k] == every.passages[k] for k in used.passages)


def test_truncation_keeps_the_closing_separator():
    tokenizer, pairs, ids = _setup(max_length=4)
    sep = tokenizer.backend.token_to_id("[SEP]")
    assert all(len(v) <= 4 and v[-1] == sep for v in pairs.passages.values())


def test_masking_follows_bert_80_10_10_and_skips_special_and_padding():
    vocab = 1000
    ids = SpecialIds(pad=0, mask=4, special=frozenset(range(5)), vocab_size=vocab)
    input_ids = torch.randint(5, vocab, (400, 60))
    input_ids[:, 0], input_ids[:, -1] = 2, 3
    attention = torch.ones_like(input_ids)
    attention[:, 50:] = 0
    input_ids[:, 50:] = 0
    masked, labels = mask_tokens(input_ids, attention, ids, 0.15, torch.Generator().manual_seed(0))
    chosen = labels != IGNORE_INDEX
    eligible = (attention == 1) & (input_ids > 4)
    assert not (chosen & ~eligible).any()
    rate = chosen.sum().item() / eligible.sum().item()
    assert 0.14 < rate < 0.16
    to_mask = (masked[chosen] == 4).float().mean().item()
    unchanged = (masked[chosen] == input_ids[chosen]).float().mean().item()
    assert 0.77 < to_mask < 0.83 and 0.07 < unchanged < 0.13
    assert not torch.isin(masked[chosen & (masked != 4)], torch.arange(5)).any(), "random replacements are never special"


def test_masked_lm_batch_is_deterministic_per_seed():
    _, pairs, ids = _setup()
    refs = [PairRef(0, "en", "en"), PairRef(1, "en", "en")]
    a = collate_masked_lm(refs, pairs, ids, 0.15, torch.Generator().manual_seed(3))
    b = collate_masked_lm(refs, pairs, ids, 0.15, torch.Generator().manual_seed(3))
    assert torch.equal(a.inputs["input_ids"], b.inputs["input_ids"])
    assert a.inputs["input_ids"].shape[0] == 4 and (a.inputs["labels"] != IGNORE_INDEX).any()


def test_special_ids_follow_a_trimmed_vocabulary_renumbering():
    # Like XLM-R's <mask> (250001), a special token past the words: trimming renumbers it, and masking
    # must use the new id or the embedding lookup overruns the trimmed table.
    backend = train_wordpiece(TEXTS * 5, 120, 1)
    backend.add_special_tokens(["<mask>"])
    full = RunTokenizer(backend, "test")
    trimmed = full.trimmed({"passage": TEXTS[:1]})
    ids = SpecialIds.of(trimmed)
    assert ids.vocab_size == len(trimmed.kept) < full.vocab_size
    assert trimmed.kept[ids.mask] == backend.token_to_id("[MASK]")
    assert all(0 <= i < ids.vocab_size for i in ids.special)
    assert {trimmed.kept[i] for i in ids.special} == {backend.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<mask>")}
    pairs = TokenizedPairs.build(trimmed, {(0, "en"): TEXTS[0]}, {(0, "en"): TEXTS[0]}, 16)
    batch = collate_masked_lm([PairRef(0, "en", "en")], pairs, ids, 0.5, torch.Generator().manual_seed(0))
    assert int(batch.inputs["input_ids"].max()) < ids.vocab_size


# --- the worst case a run's settings allow --------------------------------------------------------------------------


def test_the_masked_token_bound_is_hoeffdings():
    # A batch of 100 pairs at max_length 128: 200 sequences x 126 eligible tokens (all but [CLS] and [SEP]).
    n = 200 * 126
    assert masked_tokens_bound(n, 0.15, 1e-9) == math.ceil(3780 + math.sqrt(n * math.log(1e9) / 2)) == 4291
    assert masked_tokens_bound(n, 0.15, 1e-3) < 4291 < masked_tokens_bound(n, 0.15, 1e-12)  # smaller delta: higher
    assert masked_tokens_bound(3, 0.5, 1e-9) == 3 and masked_tokens_bound(0, 0.15, 1e-9) == 0  # never more than n


def test_bernoulli_masking_exceeds_the_bound_less_often_than_delta():
    n, p, delta = 2000, 0.15, 1e-2
    draws = (torch.rand((2000, n), generator=torch.Generator().manual_seed(0)) < p).sum(dim=1)  # 2,000 batches' counts
    assert (draws > masked_tokens_bound(n, p, delta)).float().mean() <= delta


def test_full_length_pairs_fill_the_cap_with_the_tokenizers_template_with_or_without_padding():
    tokenizer, _, ids = _setup()
    refs, pairs = full_length_pairs(tokenizer, ids, batch_size=3, max_length=16)
    batch = collate_contrastive(refs, pairs, ids)
    assert batch.inputs["query_ids"].shape == batch.inputs["passage_ids"].shape == (3, 16)
    assert batch.real_tokens == batch.padded_tokens == 2 * 3 * 16 and batch.masked_tokens is None
    row = batch.inputs["query_ids"][0].tolist()
    assert row[0] == tokenizer.token_id("[CLS]") and row[-1] == tokenizer.token_id("[SEP]")
    assert not set(row[1:-1]) & ids.special  # an ordinary token in between
    padded = collate_contrastive(*full_length_pairs(tokenizer, ids, batch_size=3, max_length=16, padded=True), ids)
    assert padded.inputs["query_ids"].shape == (3, 16) and padded.real_tokens == padded.padded_tokens - 2
    assert padded.inputs["query_mask"][:2].all() and padded.inputs["passage_mask"][-1].tolist() == [1] * 15 + [0]


def test_masked_lm_at_the_bound_masks_exactly_the_bound_and_only_eligible_tokens():
    tokenizer, _, ids = _setup()
    refs, pairs = full_length_pairs(tokenizer, ids, batch_size=3, max_length=16)
    batch = collate_masked_lm_at_bound(refs, pairs, ids, 0.15, 1e-9)
    labels, input_ids = batch.inputs["labels"], batch.inputs["input_ids"]
    assert input_ids.shape == (6, 16) and batch.real_tokens == batch.padded_tokens == 96
    expected = masked_tokens_bound(6 * 14, 0.15, 1e-9)  # 14 eligible tokens per sequence: 16 less [CLS] and [SEP]
    assert batch.masked_tokens == int((labels != IGNORE_INDEX).sum()) == expected < 6 * 14
    assert (labels[:, 0] == IGNORE_INDEX).all() and (labels[:, -1] == IGNORE_INDEX).all()  # special tokens never
    assert (input_ids[labels != IGNORE_INDEX] == ids.mask).all()
