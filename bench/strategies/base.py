"""The strategy interface, and what the four contrastive strategies share.

A strategy is a frozen dataclass whose fields are its parameters (the keys of its
`conf/strategy/<name>.yaml` besides `name`); its methods build what a run needs from it:
the batch sampler, the training objective, the collate function, the evaluation pooling, and
what drives its memory (for the choice of the probed step).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from torch import nn

from bench.core.pairs import PairBatch, ParallelIndex
from bench.data.collate import Batch, SpecialIds, TokenizedPairs, collate_contrastive
from bench.errors import ConfigError
from bench.strategies.sampling import BatchSampler
from bench.training.loop import Collate
from bench.training.objective import ContrastiveRetriever


@dataclass(frozen=True)
class PaperClaim:
    """A published claim about a strategy against another, checked by reports paired by seed."""

    metric: str  # a summary metric: map_mono, map_cross, map_multi, rank_distance, ...
    rival: str  # the strategy it is set against
    wanted: str  # "better" (resolved better) or "not worse" (never resolved worse)
    text: str


@dataclass(frozen=True)
class PretrainedParts:
    """What a checkpoint brings besides the encoder, for objectives that can use it."""

    mlm_head: dict[str, torch.Tensor] | None = None  # its masked-LM head (None: it has none, or random init)
    kept_rows: tuple[int, ...] | None = None  # the trimmed vocabulary's rows, for heads sized by it


def step_seed(seed: int, purpose: str, step: int) -> int:
    """A 63-bit seed for one step's randomness, independent across seeds, steps and purposes."""
    digest = hashlib.sha256(f"{purpose}/seed={seed}/step={step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class Strategy:
    """Base class. Subclasses set the class attributes and implement `sampler` and `build_objective`."""

    name: ClassVar[str]
    objective: ClassVar[str]  # "contrastive" or "mlm", recorded in every row
    order: ClassVar[int]  # position in tables and plots
    in_default_sweep: ClassVar[bool] = True  # False: an opt-in arm, swept only when named (or by strategy=glob(*))
    min_languages: ClassVar[int] = 1
    compared_with: ClassVar[tuple[str, ...]] = ()  # strategies reports set this one against, paired by seed
    paper_claims: ClassVar[tuple[PaperClaim, ...]] = ()  # what the literature says it does against them

    def sampler(self, index: ParallelIndex, batch_size: int, seed: int) -> BatchSampler:
        raise NotImplementedError

    def build_objective(self, encoder: nn.Module, pooling: str, gather_negatives: bool, pretrained: PretrainedParts) -> nn.Module:
        raise NotImplementedError

    def collate(self, tokenized: TokenizedPairs, special: SpecialIds, seed: int) -> Collate:
        raise NotImplementedError

    def evaluation_pooling(self, model_pooling: str) -> str:
        """How sentence embeddings are pooled when the trained encoder is evaluated."""
        return model_pooling

    def worst_case_batch(self, batch: PairBatch, tokenized: TokenizedPairs, special: SpecialIds,
                         mask_delta: float) -> Batch:  # fmt: skip
        """`batch` collated as this strategy's steps would be, at the most memory it could need: by default its
        ordinary collation (nothing random in it); masked LM takes its masking's high-probability bound."""
        return self.collate(tokenized, special, seed=0)(0, batch)

    def memory_drivers(self, batch: Batch) -> tuple[int, ...]:
        """What makes one batch of this strategy need more memory than another (larger is more).

        By default the padded widths of the batch's tensors; the probed step is chosen among the
        steps whose drivers no other step exceeds in every coordinate."""
        return tuple(tensor.shape[-1] for tensor in batch.inputs.values() if tensor.dim() == 2)

    def params(self) -> dict:
        """The strategy's parameters, as configured (recorded in every row)."""
        return asdict(self)

    def check(self) -> None:
        """Validate parameters; errors name the `strategy.<key>` to fix."""


@dataclass(frozen=True)
class ContrastiveStrategy(Strategy):
    """InfoNCE over in-batch negatives; subclasses differ only in how batches are drawn."""

    objective: ClassVar[str] = "contrastive"
    temperature: float  # softmax temperature of the scores (cosines / temperature)

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError(f"strategy.temperature must be a positive number, got {self.temperature!r}")
        self.check()

    def build_objective(self, encoder: nn.Module, pooling: str, gather_negatives: bool, pretrained: PretrainedParts) -> nn.Module:
        return ContrastiveRetriever(encoder, pooling, self.temperature, gather_negatives)

    def collate(self, tokenized: TokenizedPairs, special: SpecialIds, seed: int) -> Collate:
        return lambda step, refs: collate_contrastive(refs, tokenized, special)
