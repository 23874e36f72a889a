"""The lexical baseline: deterministic hashed character n-grams whose dot products are cosines."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from bench.evaluation.lexical import LexicalEncoder, row_slice, similarity

TEXTS = ["Hello world", "hello, world!", "A completely different sentence", "", "Привет мир", "世界你好"]


def test_rows_are_unit_length_and_self_similarity_is_one():
    x = LexicalEncoder().encode(TEXTS)
    assert x.is_sparse and x.shape == (len(TEXTS), 2**18)
    norms = torch.sqrt(torch.sparse.sum(x * x, dim=1).to_dense())
    assert torch.allclose(norms, torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 1.0]))  # the empty text is a zero row
    scores = similarity(x, x)
    assert torch.allclose(scores.diagonal(), torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 1.0]))


def test_similarity_equals_dense_cosine_and_slices():
    x = LexicalEncoder(n_features=4096).encode(TEXTS)
    dense = x.to_dense()
    assert torch.allclose(similarity(x, x), dense @ dense.T, atol=1e-6)
    assert torch.equal(similarity(row_slice(x, 2, 5), x), similarity(x, x)[2:5])
    full = similarity(*[LexicalEncoder().encode(TEXTS)] * 2)
    assert full[0, 1] > 0.5 > full[0, 2]  # shared words beat a different sentence
    assert full[0, 4] == 0.0  # different scripts share nothing (no lone-space feature)


def test_sublinear_tf_by_hand():
    enc = LexicalEncoder(ngram_range=(1, 1))
    x = enc.encode(["aab"]).to_dense()[0]  # unigrams: a x2, b x1 -> weights 1 + ln 2 and 1
    weights = sorted(x[x != 0].tolist())
    norm = math.hypot(1 + math.log(2), 1.0)
    assert weights == pytest.approx([1.0 / norm, (1 + math.log(2)) / norm])


def test_deterministic_across_processes_and_hash_seeds():
    code = ("from bench.evaluation.lexical import LexicalEncoder; x = LexicalEncoder().encode(['Hello world', 'Привет мир']);"
            "print(x.indices().tolist(), x.values().tolist())")
    outputs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outputs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)
    assert len(outputs) == 1
    x = LexicalEncoder().encode(["Hello world", "Привет мир"])
    assert outputs.pop().strip() == f"{x.indices().tolist()} {x.values().tolist()}"
