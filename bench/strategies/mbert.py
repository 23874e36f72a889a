"""The traditional baseline: mBERT-style masked-LM training on the same text (Devlin et al. 2019).

15% of real tokens are masked (80% [MASK], 10% random, 10% kept), languages are sampled
proportionally to size**exponent (mBERT/XLM's smoothing toward small languages), and a batch may
mix languages. Evaluated with `eval_pooling` (mean by default: an MLM-only encoder has no
trained [CLS] summary).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn

from bench.core.pairs import PairBatch, PairRef, ParallelIndex
from bench.data.collate import (
    IGNORE_INDEX, Batch, SpecialIds, TokenizedPairs, collate_masked_lm, collate_masked_lm_at_bound,
)  # fmt: skip
from bench.errors import ConfigError
from bench.models.encoder import POOLINGS
from bench.strategies.base import Collate, PretrainedParts, Strategy, step_seed
from bench.strategies.registry import register
from bench.strategies.sampling import BatchSampler, Epoch
from bench.training.objective import MaskedLanguageModel


@dataclass
class MaskedLMEpoch(Epoch):
    """Each language cycles through its own shuffled groups; an epoch has a fixed number of batches."""

    cycles: dict[str, list[int]] = field(default_factory=dict)
    batches_left: int = 0


class MaskedLMBatchSampler(BatchSampler):
    """(group, lang, lang) items, each one's language drawn with probability proportional to
    n_lang**exponent (n_lang: groups in that language). Smoothing repeats small languages more than
    one pass over the groups could, so each language cycles through its own shuffled groups; an
    epoch is as many batches as one pass over all groups would give."""

    def __init__(self, index: ParallelIndex, batch_size: int, seed: int = 0, exponent: float = 0.7):
        super().__init__(index, batch_size, seed)
        n_eligible = sum(1 for langs in self._langs if langs)
        self.require(n_eligible, "present in any training language")
        self.weights = {lang: n**exponent for lang, n in index.group_counts().items() if n > 0}
        self._groups_in = {lang: [g for g, langs in enumerate(self._langs) if lang in langs] for lang in self.weights}
        self._batches_per_epoch = n_eligible // batch_size

    def start_epoch(self, number: int) -> MaskedLMEpoch:
        base = super().start_epoch(number)
        return MaskedLMEpoch(number, base.rng, base.pool, {lang: [] for lang in self.weights}, self._batches_per_epoch)

    def next_batch(self, epoch: MaskedLMEpoch, step: int, total_steps: int) -> PairBatch | None:
        if epoch.batches_left == 0:
            return None
        epoch.batches_left -= 1
        batch: PairBatch = []
        used: set[int] = set()
        used_in: Counter[str] = Counter()
        while len(batch) < self.batch_size:
            # A language whose groups are all in the batch already cannot be drawn (rare: tiny languages).
            open_langs = [lang for lang in self.weights if used_in[lang] < len(self._groups_in[lang])]
            lang = epoch.rng.choices(open_langs, [self.weights[x] for x in open_langs])[0]
            group = self._next_unused(epoch.cycles[lang], lang, used, epoch)
            batch.append(PairRef(group, lang, lang))
            used.add(group)
            used_in.update(self._langs[group])
        return batch

    def _next_unused(self, cycle: list[int], lang: str, used: set[int], epoch: Epoch) -> int:
        """The next group of `lang`'s cycle not in the batch; an exhausted cycle restarts reshuffled."""
        while True:
            for pos, g in enumerate(cycle):
                if g not in used:
                    return cycle.pop(pos)
            fresh = list(self._groups_in[lang])
            epoch.rng.shuffle(fresh)
            cycle.extend(fresh)


@register
@dataclass(frozen=True)
class MaskedLM(Strategy):
    name = "mbert"
    objective = "mlm"
    order = 90
    mask_prob: float  # fraction of real tokens chosen for prediction
    sampling_exponent: float  # language sampling ∝ size**exponent
    eval_pooling: str  # pooling when the trained encoder is evaluated

    def __post_init__(self) -> None:
        if not (isinstance(self.mask_prob, (int, float)) and 0 < self.mask_prob < 1):
            raise ConfigError(f"strategy.mask_prob must be in (0, 1), got {self.mask_prob!r}")
        exponent = self.sampling_exponent
        if not (isinstance(exponent, (int, float)) and math.isfinite(exponent) and exponent >= 0):
            raise ConfigError(f"strategy.sampling_exponent must be finite and >= 0, got {exponent!r}")
        if self.eval_pooling not in POOLINGS:
            raise ConfigError(f"strategy.eval_pooling must be one of {', '.join(POOLINGS)}, got {self.eval_pooling!r}")

    def sampler(self, index: ParallelIndex, batch_size: int, seed: int) -> BatchSampler:
        return MaskedLMBatchSampler(index, batch_size, seed, self.sampling_exponent)

    def build_objective(self, encoder: nn.Module, pooling: str, gather_negatives: bool, pretrained: PretrainedParts) -> nn.Module:
        # On a pretrained encoder this continues masked-LM training, with the checkpoint's head where it has one.
        return MaskedLanguageModel(encoder, pretrained.mlm_head, pretrained.kept_rows)

    def collate(self, tokenized: TokenizedPairs, special: SpecialIds, seed: int) -> Collate:
        def collate(step: int, refs: PairBatch) -> Batch:
            generator = torch.Generator().manual_seed(step_seed(seed, "mask", step))  # masks depend on (seed, step) only
            return collate_masked_lm(refs, tokenized, special, self.mask_prob, generator)

        return collate

    def evaluation_pooling(self, model_pooling: str) -> str:
        return self.eval_pooling

    def worst_case_batch(self, batch: PairBatch, tokenized: TokenizedPairs, special: SpecialIds,
                         mask_delta: float) -> Batch:  # fmt: skip
        # Each eligible token is masked with probability mask_prob: all of them is possible but absurd.
        return collate_masked_lm_at_bound(batch, tokenized, special, self.mask_prob, mask_delta)

    def memory_drivers(self, batch: Batch) -> tuple[int, ...]:
        # The vocabulary projection runs at masked positions only: its logits are (masked tokens x vocabulary).
        labels = batch.inputs["labels"]
        return labels.shape[-1], int((labels != IGNORE_INDEX).sum())
