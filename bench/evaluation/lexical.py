"""A no-training lexical baseline: hashed character n-grams, scored by cosine similarity.

Each text becomes a sparse vector over 2^18 hashed features: the character 1- to 4-grams of
every lower-cased, whitespace-separated word, the 2- to 4-grams taken with one space padded
on each side (so word starts and ends are features; unsegmented scripts such as Thai or
Chinese are one long "word" and still share n-grams). Features are hashed with CRC-32 (fixed across runs and
machines, unlike Python's salted `hash`), weighted by sublinear term frequency 1 + ln(tf)
and L2-normalised, so a dot product of two rows is their cosine similarity.

It implements the encoder interface (`encode(texts, batch_size)`) with torch sparse COO
rows; `similarity` and `row_slice` below are the two operations retrieval needs on them.
"""

from __future__ import annotations

import math
import zlib

import torch

N_FEATURES = 1 << 18
NGRAM_RANGE = (1, 4)


class LexicalEncoder:
    """Hashed character n-gram tf vectors; deterministic, nothing to train."""

    name = "lexical-char-ngram"

    def __init__(self, n_features: int = N_FEATURES, ngram_range: tuple[int, int] = NGRAM_RANGE) -> None:
        if n_features < 1 or not 1 <= ngram_range[0] <= ngram_range[1]:
            raise ValueError(f"need n_features >= 1 and 1 <= min_n <= max_n, got {n_features}, {ngram_range}")
        self.n_features = n_features
        self.ngram_range = ngram_range
        self._buckets: dict[str, int] = {}  # n-gram -> feature; hashing once per distinct n-gram

    def features(self, text: str) -> dict[int, float]:
        """{feature: raw count} of one text."""
        counts: dict[str, int] = {}
        low, high = self.ngram_range
        for word in text.lower().split():
            padded = f" {word} "
            for n in range(low, high + 1):
                source = word if n == 1 else padded  # a lone boundary space is in every text: no signal
                for i in range(len(source) - n + 1):
                    gram = source[i : i + n]
                    counts[gram] = counts.get(gram, 0) + 1
        out: dict[int, float] = {}
        for gram, count in counts.items():
            bucket = self._buckets.get(gram)
            if bucket is None:
                bucket = self._buckets[gram] = zlib.crc32(gram.encode("utf-8")) % self.n_features
            out[bucket] = out.get(bucket, 0.0) + count  # hash collisions add up
        return out

    def encode(self, texts: list[str], batch_size: int = 0, kind: str = "passage") -> torch.Tensor:
        """(len(texts), n_features) sparse COO, coalesced, rows L2-normalised (empty texts: zero rows).

        batch_size and kind (query or passage) are accepted for interface compatibility: featurisation
        is per text and the same for both."""
        rows: list[int] = []
        columns: list[int] = []
        values: list[float] = []
        for row, text in enumerate(texts):
            feats = self.features(text)
            weights = {f: 1.0 + math.log(c) for f, c in feats.items()}
            norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
            for feature in sorted(weights):
                rows.append(row)
                columns.append(feature)
                values.append(weights[feature] / norm)
        indices = torch.tensor([rows, columns], dtype=torch.long).reshape(2, -1)
        values_t = torch.tensor(values, dtype=torch.float32)
        return torch.sparse_coo_tensor(indices, values_t, (len(texts), self.n_features), check_invariants=False).coalesce()


def row_slice(matrix: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Rows [start, stop) of a coalesced sparse COO matrix (its row indices are sorted)."""
    row_ids = matrix.indices()[0]
    lo, hi = torch.searchsorted(row_ids, torch.tensor([start, stop])).tolist()
    indices = matrix.indices()[:, lo:hi] - torch.tensor([[start], [0]])
    size = (stop - start, matrix.shape[1])
    return torch.sparse_coo_tensor(indices, matrix.values()[lo:hi], size, is_coalesced=True, check_invariants=False)


def similarity(queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Dense (n_queries, n_candidates) dot products of two sparse COO matrices.

    Only the features the queries use matter, so the candidates are cut down to those
    columns (a few thousand for a chunk of queries instead of 2^18), the queries become a
    small dense matrix, and one sparse-times-dense product does the rest.
    """
    queries, candidates = queries.coalesce(), candidates.coalesce()
    used, position = torch.unique(queries.indices()[1], return_inverse=True)
    dense_queries = torch.zeros(len(used), queries.shape[0])
    dense_queries[position, queries.indices()[0]] = queries.values()
    lookup = torch.full((candidates.shape[1],), -1, dtype=torch.long)
    lookup[used] = torch.arange(len(used))
    rows, features = candidates.indices()
    kept = lookup[features]
    keep = kept >= 0
    narrowed = torch.sparse_coo_tensor(
        torch.stack([rows[keep], kept[keep]]), candidates.values()[keep], (candidates.shape[0], len(used)), check_invariants=False
    )
    return torch.sparse.mm(narrowed, dense_queries).T.contiguous()
