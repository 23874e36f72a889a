"""From sampled pair references to padded tensors: pre-tokenised once, padded per batch.

Every training text is tokenised once up front, so a batch's shape (and its padding) is
known from the sampler's plan before any step runs; the harness uses that to pick the
step whose memory it tracks (`bench.stages.choose_probed_step`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bench.core.pairs import PairBatch, PairRef
from bench.data.tokenizer import ALL_SPECIAL_TOKENS, RunTokenizer


IGNORE_INDEX = -100  # label of positions the masked-LM loss ignores (PyTorch's cross_entropy default)


@dataclass(frozen=True)
class SpecialIds:
    """The ids collation needs; they differ between our WordPiece and e.g. XLM-R's SentencePiece."""

    pad: int
    mask: int
    special: frozenset[int]
    vocab_size: int

    @classmethod
    def of(cls, tokenizer: RunTokenizer, vocab_size: int | None = None) -> SpecialIds:
        # Ids as `encode` returns them: a trimmed vocabulary renumbers its rows (XLM-R's <mask> is 250001 before).
        ids = {t: i for t in ALL_SPECIAL_TOKENS if (i := tokenizer.token_id(t)) is not None}
        pad = next(ids[t] for t in ("[PAD]", "<pad>") if t in ids)
        mask = next(ids[t] for t in ("[MASK]", "<mask>") if t in ids)
        return cls(pad, mask, frozenset(ids.values()), vocab_size or tokenizer.vocab_size)


@dataclass(frozen=True)
class TokenizedPairs:
    """Token ids of every training question and answer sentence, keyed by (group index, language)."""

    queries: dict[tuple[int, str], list[int]]
    passages: dict[tuple[int, str], list[int]]

    @classmethod
    def build(cls, tokenizer: RunTokenizer, queries: dict[tuple[int, str], str], passages: dict[tuple[int, str], str],
              max_length: int, plan: list[PairBatch] | None = None) -> TokenizedPairs:  # fmt: skip
        """Every text, or with `plan` only the texts its batches use (a text's ids never depend on the others:
        at 104 synthetic languages the 20-step plan of a prediction uses 2% of 186,000 texts)."""
        def encode(texts: dict[tuple[int, str], str], kind: str, used: set | None) -> dict[tuple[int, str], list[int]]:
            keys = list(texts) if used is None else [k for k in texts if k in used]
            ids = tokenizer.encode([texts[k] for k in keys], kind)
            return {k: _truncate(row, max_length) for k, row in zip(keys, ids)}

        used_queries = None if plan is None else {(r.group, r.query_lang) for batch in plan for r in batch}
        used_passages = None if plan is None else {(r.group, r.passage_lang) for batch in plan for r in batch}
        return cls(encode(queries, "query", used_queries), encode(passages, "passage", used_passages))

    def sequences(self, batch: PairBatch) -> tuple[list[list[int]], list[list[int]]]:
        return (
            [self.queries[(ref.group, ref.query_lang)] for ref in batch],
            [self.passages[(ref.group, ref.passage_lang)] for ref in batch],
        )


def _truncate(ids: list[int], max_length: int) -> list[int]:
    # Keep the closing special token ([SEP] / </s>) when cutting, as the tokenizer's own truncation does.
    return ids if len(ids) <= max_length else ids[: max_length - 1] + ids[-1:]


@dataclass
class Batch:
    """Tensors for the objective's forward, and the work they represent."""

    inputs: dict[str, torch.Tensor]
    n_samples: int
    padded_tokens: int
    real_tokens: int

    def to(self, device: torch.device) -> Batch:
        return Batch({k: v.to(device, non_blocking=True) for k, v in self.inputs.items()}, self.n_samples, self.padded_tokens, self.real_tokens)

    @property
    def width(self) -> int:
        """The widest padded sequence of the batch (its tensors' last dimension): a text cut at max_length makes it that."""
        return max((t.shape[-1] for t in self.inputs.values() if t.dim() == 2), default=0)

    @property
    def masked_tokens(self) -> int | None:
        """Positions whose token the loss predicts (masked LM's labels); None for a batch without labels."""
        labels = self.inputs.get("labels")
        return None if labels is None else int((labels != IGNORE_INDEX).sum())


def pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def collate_contrastive(batch: PairBatch, pairs: TokenizedPairs, ids: SpecialIds) -> Batch:
    queries, passages = pairs.sequences(batch)
    q_ids, q_mask = pad(queries, ids.pad)
    p_ids, p_mask = pad(passages, ids.pad)
    inputs = {"query_ids": q_ids, "query_mask": q_mask, "passage_ids": p_ids, "passage_mask": p_mask}
    real = int(q_mask.sum() + p_mask.sum())
    return Batch(inputs, len(batch), q_ids.numel() + p_ids.numel(), real)


def first_ordinary_id(ids: SpecialIds) -> int:
    return next(i for i in range(ids.vocab_size) if i not in ids.special)


def random_ordinary_tokens(count: int, ids: SpecialIds, generator: torch.Generator) -> torch.Tensor:
    """Uniform draws from the vocabulary, never a special token (those are remapped to the first ordinary id)."""
    first_ordinary = first_ordinary_id(ids)
    draws = torch.randint(first_ordinary, ids.vocab_size, (count,), generator=generator)
    return torch.where(torch.isin(draws, torch.tensor(sorted(ids.special))), first_ordinary, draws)


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, ids: SpecialIds, mask_prob: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: pick mask_prob of real non-special tokens; 80% [MASK], 10% random, 10% unchanged."""
    eligible = eligible_for_masking(input_ids, attention_mask, ids)
    chosen = (torch.rand(input_ids.shape, generator=generator) < mask_prob) & eligible
    if not chosen.any():  # a batch must teach something; mask one eligible token
        positions = eligible.nonzero()
        chosen[tuple(positions[torch.randint(len(positions), (1,), generator=generator)][0])] = True
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    roll = torch.rand(input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[chosen & (roll < 0.8)] = ids.mask
    random_slots = chosen & (roll >= 0.8) & (roll < 0.9)
    masked[random_slots] = random_ordinary_tokens(int(random_slots.sum()), ids, generator)
    return masked, labels


def eligible_for_masking(input_ids: torch.Tensor, attention_mask: torch.Tensor, ids: SpecialIds) -> torch.Tensor:
    """Real tokens that are not special: the ones masking may pick."""
    return ~torch.isin(input_ids, torch.tensor(sorted(ids.special))) & (attention_mask == 1)


def collate_masked_lm(batch: PairBatch, pairs: TokenizedPairs, ids: SpecialIds, mask_prob: float, generator: torch.Generator) -> Batch:
    """The same texts as a contrastive batch (questions and answers), as 2B masked sequences."""
    queries, passages = pairs.sequences(batch)
    input_ids, attention_mask = pad(queries + passages, ids.pad)
    masked, labels = mask_tokens(input_ids, attention_mask, ids, mask_prob, generator)
    inputs = {"input_ids": masked, "attention_mask": attention_mask, "labels": labels}
    return Batch(inputs, len(batch), input_ids.numel(), int(attention_mask.sum()))


# ---------------------------------------------------------------- the worst case a run's settings allow


def masked_tokens_bound(eligible: int, mask_prob: float, delta: float) -> int:
    """The most tokens Bernoulli(mask_prob) masking picks among `eligible` but with probability `delta`.

    Hoeffding: P(masked >= n*p + t) <= exp(-2 t^2 / n), so t = sqrt(n ln(1/delta) / 2); never more than there are.
    """
    if eligible == 0:
        return 0
    return min(eligible, math.ceil(eligible * mask_prob + math.sqrt(eligible * math.log(1 / delta) / 2)))


def full_length_pairs(tokenizer: RunTokenizer, ids: SpecialIds, batch_size: int, max_length: int,
                      padded: bool = False) -> tuple[PairBatch, TokenizedPairs]:  # fmt: skip
    """`batch_size` pairs whose query and passage fill `max_length`: the widest batch the settings allow. Each text is
    the tokenizer's own template (its special tokens, a model's prefix) around an ordinary token, truncated as real
    texts are, so it holds exactly the special tokens a real text of that length has. With `padded`, the last pair's
    texts are one token shorter: the batch then has padding, and an encoder keeps an attention mask that it may
    drop for a batch without any."""
    def text(kind: str, length: int) -> list[int]:
        template = tokenizer.encode([""], kind)[0]  # [CLS] ... [SEP]: what every text of this kind carries
        return _truncate(template[:-1] + [first_ordinary_id(ids)] * length + template[-1:], length)

    refs = [PairRef(group, "full-length", "full-length") for group in range(batch_size)]
    lengths = [max_length - 1 if padded and ref is refs[-1] else max_length for ref in refs]
    queries = {(r.group, r.query_lang): text("query", n) for r, n in zip(refs, lengths)}
    passages = {(r.group, r.passage_lang): text("passage", n) for r, n in zip(refs, lengths)}
    return refs, TokenizedPairs(queries, passages)


def collate_masked_lm_at_bound(batch: PairBatch, pairs: TokenizedPairs, ids: SpecialIds, mask_prob: float,
                               delta: float) -> Batch:  # fmt: skip
    """`collate_masked_lm`'s sequences with the most masked tokens its masking gives in practice
    (`masked_tokens_bound`), every one a [MASK]: what makes a masked-LM step large is how many there are."""
    queries, passages = pairs.sequences(batch)
    input_ids, attention_mask = pad(queries + passages, ids.pad)
    eligible = eligible_for_masking(input_ids, attention_mask, ids)
    count = masked_tokens_bound(int(eligible.sum()), mask_prob, delta)
    chosen = torch.zeros_like(eligible)
    chosen.view(-1)[eligible.view(-1).nonzero().squeeze(1)[:count]] = True
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    masked = torch.where(chosen, torch.full_like(input_ids, ids.mask), input_ids)
    inputs = {"input_ids": masked, "attention_mask": attention_mask, "labels": labels}
    return Batch(inputs, len(batch), input_ids.numel(), int(attention_mask.sum()))
