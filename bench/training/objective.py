"""Training objectives: InfoNCE over in-batch negatives (contrastive strategies) and masked LM (mbert).

Each objective is one `nn.Module` whose forward takes a collated batch and returns the loss,
so the encoder is called from a single parent module (what DDP and the memory tracker expect).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel

from bench.data.collate import IGNORE_INDEX
from bench.models.encoder import MaskedLMHead, pool



def info_nce(queries: torch.Tensor, passages: torch.Tensor, temperature: float, label_offset: int = 0) -> torch.Tensor:
    """Cross-entropy of each query against all passages; its own passage is the positive."""
    scores = queries @ passages.T / temperature
    labels = torch.arange(queries.shape[0], device=queries.device) + label_offset
    return F.cross_entropy(scores.float(), labels)


def gather_across_ranks(local: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All ranks' passages (differentiable), and where this rank's block starts."""
    from torch.distributed.nn.functional import all_gather

    gathered = all_gather(local.contiguous())
    return torch.cat(gathered), dist.get_rank() * local.shape[0]


class ContrastiveRetriever(nn.Module):
    """One shared encoder for questions and passages, trained with InfoNCE."""

    def __init__(self, encoder: PreTrainedModel, pooling: str, temperature: float, gather_negatives: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.temperature = temperature
        self.gather_negatives = gather_negatives

    def record_fields(self) -> dict:
        return {}

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return F.normalize(pool(hidden, attention_mask, self.pooling), dim=-1)

    def forward(self, query_ids, query_mask, passage_ids, passage_mask) -> torch.Tensor:
        queries = self.embed(query_ids, query_mask)
        passages = self.embed(passage_ids, passage_mask)
        offset = 0
        if self.gather_negatives and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            passages, offset = gather_across_ranks(passages)
        return info_nce(queries, passages, self.temperature, offset)


class MaskedLanguageModel(nn.Module):
    """mBERT-style MLM: the vocabulary projection runs only at masked positions."""

    def __init__(self, encoder: PreTrainedModel, head_state: dict[str, torch.Tensor] | None = None,
                 kept_rows: tuple[int, ...] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.encoder = encoder
        self.head = MaskedLMHead(encoder, head_state, kept_rows)

    def record_fields(self) -> dict:
        return {"mlm_head": self.head.source}

    def forward(self, input_ids, attention_mask, labels) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        masked = labels != IGNORE_INDEX
        logits = self.head(hidden[masked])
        return F.cross_entropy(logits.float(), labels[masked])
