"""The LAReQA evaluation protocol (Roy et al., 2020): mono-, cross- and multilingual answer retrieval.

For an evaluation set with languages L (each question has an id shared by its translations):
  mono   X       queries of X, pool = X's candidates, relevant = the question's own answer.
  cross  X -> Y  (X != Y) queries of X whose group also exists in Y, pool = Y's candidates,
                 relevant = the group's answer in Y. Queries without a parallel in Y are
                 dropped; each pair records its own n.
  multi  X       queries of X, one pool of every language's candidates, relevant = the
                 group's answer in every language it exists in.
mAP is macro-averaged over the mono settings, over the cross pairs, and for multi over
query languages (per-query average within a language first); rank distance (the highest
minus the lowest rank of a query's relevant answers in the multilingual pool, the language
bias measure of the hybrid-batch paper, arXiv 2408.10536) is averaged the same way as multi.

Every question and candidate is encoded once. The multilingual pool is laid out language
by language, so one pass over its score matrix yields every setting: the block of language
Y, in pool order, is the pool of X -> Y, and `bench.evaluation.metrics` reports each relevant
candidate's rank both in the whole pool and within its own block.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Protocol

import pandas as pd
import torch

from bench.core.metric_names import EVAL_ROLES, EVAL_SUMMARY_METRICS, eval_column
from bench.data.lareqa import LareqaDataset
from bench.errors import DataError
from bench.evaluation import lexical
from bench.evaluation.metrics import PoolLayout, rank_arranged, rank_relevant, ranking_metrics
from bench.evaluation.sets import EvalSet

FRAME_COLUMNS = (
    "dataset", "setting", "query_lang", "pool_lang", "n", "map", "r1", "r10", "ndcg10", "rank_distance",
    "query_lang_seen_in_training", "pool_lang_seen_in_training",
)


class Encoder(Protocol):
    def encode(self, texts: list[str], batch_size: int, kind: str = "passage") -> torch.Tensor: ...


@dataclass(frozen=True)
class Encoded:
    """Embeddings of every question and candidate of a set, in pool order (language by language)."""

    languages: tuple[str, ...]
    queries: torch.Tensor  # (n_questions, dim), dense, or sparse COO for the lexical baseline
    candidates: torch.Tensor  # (n_candidates, dim)
    query_lang: torch.Tensor  # (n_questions,) index into languages
    block_starts: torch.Tensor  # (n_languages,) first candidate of each language in the pool
    relevant: torch.Tensor  # (n_questions, n_languages) pool index of the group's answer per language, -1: none
    tie_seed: int  # equal scores are ordered by a permutation of the pool seeded with this (metrics.tie_positions)
    query_ids: tuple[str, ...] = ()  # each question's parallel-group id (shared by its translations), in query order


def tie_seed(name: str) -> int:
    """The tie order's seed: fixed per evaluation set, the same for every run and encoder."""
    return zlib.crc32(f"ties/{name}".encode())


def encode_set(encoder: Encoder, dataset: LareqaDataset, batch_size: int) -> Encoded:
    """Encode each language's questions and candidates once and build the parallel answer table."""
    languages = dataset.languages
    parts = [dataset.by_lang[lang] for lang in languages]
    sizes = torch.tensor([len(p.candidates) for p in parts])
    starts = torch.cumsum(sizes, 0) - sizes
    answers: dict[str, dict[int, int]] = {}
    for k, part in enumerate(parts):
        for q in part.questions:
            answers.setdefault(q.group_id, {})[k] = int(starts[k]) + q.answer
    questions = [q for part in parts for q in part.questions]
    relevant = torch.tensor([[answers[q.group_id].get(k, -1) for k in range(len(parts))] for q in questions],
                            dtype=torch.long).reshape(len(questions), len(parts))
    query_lang = torch.repeat_interleave(torch.arange(len(parts)), torch.tensor([len(p.questions) for p in parts]))
    return Encoded(
        languages=languages,
        queries=encoder.encode([q.text for q in questions], batch_size, kind="query"),
        candidates=encoder.encode([c.text for p in parts for c in p.candidates], batch_size, kind="passage"),
        query_lang=query_lang,
        block_starts=starts,
        relevant=relevant,
        tie_seed=tie_seed(dataset.name),
        query_ids=tuple(q.group_id for q in questions),
    )


def row_slice(matrix: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    return lexical.row_slice(matrix, start, stop) if matrix.is_sparse else matrix[start:stop]


def similarity(queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Dense (n_queries, n_candidates) scores: dot products of unit vectors, i.e. cosines."""
    if queries.is_sparse:
        return lexical.similarity(queries, candidates)
    return queries @ candidates.T


@dataclass(frozen=True)
class PoolRanks:
    """Ranks of every question's parallel answers: in the multilingual pool and in their language's pool."""

    encoded: Encoded
    pool: torch.Tensor  # (n_questions, n_languages), 0 where the group lacks that language
    block: torch.Tensor


def rank_set(encoded: Encoded, query_chunk: int = 1024) -> PoolRanks:
    """Score the multilingual pool a chunk of queries at a time; never holds the full matrix.

    Dense candidates are put in the ranking layout once, so each chunk's matmul yields
    arranged scores directly (no per-chunk rearrangement).
    """
    layout = PoolLayout.of(encoded.candidates.shape[0], encoded.block_starts, encoded.tie_seed)
    arranged = None if encoded.candidates.is_sparse else layout.arrange_rows(encoded.candidates).T.contiguous()
    pool, block = torch.zeros_like(encoded.relevant), torch.zeros_like(encoded.relevant)
    for lo in range(0, len(encoded.relevant), query_chunk):
        hi = min(lo + query_chunk, len(encoded.relevant))
        queries = row_slice(encoded.queries, lo, hi)
        if arranged is None:
            ranks = rank_relevant(similarity(queries, encoded.candidates), encoded.relevant[lo:hi], encoded.block_starts,
                                  encoded.tie_seed)  # fmt: skip
        else:
            ranks = rank_arranged(queries @ arranged, encoded.relevant[lo:hi], layout)
        pool[lo:hi], block[lo:hi] = ranks.pool, ranks.block
    return PoolRanks(encoded, pool, block)


def _row(name: str, setting: str, query: str, pool: str, ranks: torch.Tensor, seen: frozenset[str], pool_seen: bool) -> dict:
    """One setting's line of the per-setting table, from its (n, R) relevant ranks."""
    row = {"dataset": name, "setting": setting, "query_lang": query, "pool_lang": pool, "n": int(len(ranks)),
           "query_lang_seen_in_training": query in seen, "pool_lang_seen_in_training": pool_seen}
    if len(ranks) == 0:
        return row | {"map": float("nan"), "r1": float("nan"), "r10": float("nan"), "ndcg10": float("nan"), "rank_distance": None}
    metrics = ranking_metrics(ranks)
    row |= {key: float(getattr(metrics, attr).mean()) for key, attr in
            (("map", "ap"), ("r1", "r1"), ("r10", "r10"), ("ndcg10", "ndcg10"))}
    row["rank_distance"] = float(metrics.rank_distance.mean()) if setting == "multi" else None
    return row


def setting_table(name: str, ranks: PoolRanks, seen: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Long-format table: one row per mono language, cross pair and multi query language."""
    enc = ranks.encoded
    rows = []
    for x, lang_x in enumerate(enc.languages):
        of_x = enc.query_lang == x
        rows.append(_row(name, "mono", lang_x, lang_x, ranks.block[of_x, x : x + 1], seen, lang_x in seen))
        for y, lang_y in enumerate(enc.languages):
            if y != x:
                has_y = of_x & (enc.relevant[:, y] >= 0)
                rows.append(_row(name, "cross", lang_x, lang_y, ranks.block[has_y, y : y + 1], seen, lang_y in seen))
        rows.append(_row(name, "multi", lang_x, "*", ranks.pool[of_x], seen, set(enc.languages) <= seen))
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


QUERY_COLUMNS = ("set", "setting", "query_lang", "pool_lang", "query_id", "ap", "rank_distance")


def query_table(name: str, ranks: PoolRanks) -> pd.DataFrame:
    """Every query's average precision in every setting (and its rank distance in the multilingual
    pool): the table any claim can be re-tested from, one question's translations sharing a query_id.
    Averaging `ap` per cell as `setting_table` does gives back its numbers exactly."""
    enc = ranks.encoded
    ids = pd.Series(enc.query_ids, dtype="string")
    frames = []

    def add(setting: str, rows: torch.Tensor, query: str, pool: str, relevant: torch.Tensor) -> None:
        if not len(relevant):
            return
        metrics = ranking_metrics(relevant)
        frames.append(pd.DataFrame({
            "set": name, "setting": setting, "query_lang": query, "pool_lang": pool,
            "query_id": ids[rows.numpy()].to_numpy(), "ap": metrics.ap.numpy(),
            "rank_distance": metrics.rank_distance.numpy() if setting == "multi" else float("nan")}))  # fmt: skip

    for x, lang_x in enumerate(enc.languages):
        of_x = enc.query_lang == x
        add("mono", of_x.nonzero().flatten(), lang_x, lang_x, ranks.block[of_x, x : x + 1])
        for y, lang_y in enumerate(enc.languages):
            if y != x:
                has_y = of_x & (enc.relevant[:, y] >= 0)
                add("cross", has_y.nonzero().flatten(), lang_x, lang_y, ranks.block[has_y, y : y + 1])
        add("multi", of_x.nonzero().flatten(), lang_x, "*", ranks.pool[of_x])
    table = pd.concat(frames, ignore_index=True)
    for column in ("set", "setting", "query_lang", "pool_lang"):
        table[column] = table[column].astype("category")
    return table[list(QUERY_COLUMNS)]


def summarize(table: pd.DataFrame) -> dict[str, float | None]:
    """Macro averages of one set's table, keyed by the schema's metric names (map_mono, ...).

    None where nothing was measured (e.g. no cross pairs when a single language is evaluated).
    """
    by = {setting: table[(table.setting == setting) & (table.n > 0)] for setting in ("mono", "cross", "multi")}

    def mean(setting: str, column: str) -> float | None:
        values = by[setting][column].astype(float)
        return float(values.mean()) if len(values) else None

    return {
        "map_mono": mean("mono", "map"),
        "map_cross": mean("cross", "map"),
        "map_multi": mean("multi", "map"),
        "rank_distance": mean("multi", "rank_distance"),
        "ndcg10_multi": mean("multi", "ndcg10"),
        "r1_multi": mean("multi", "r1"),
    }


@dataclass(frozen=True)
class EvalResult:
    summary: dict  # exactly the schema's eval columns (None where a set was not evaluated)
    table: pd.DataFrame  # per-setting rows of every evaluated set
    summaries: dict[str, dict[str, float]]  # per evaluated set name, including sets without schema columns
    seconds: float  # encoding, ranking and scoring (a run records its eval stage as eval_s)
    per_query: pd.DataFrame | None = None  # query_table of every set, when asked for


def by_language(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per language of one set: mono mAP, cross mAP as query and as pool language, multi mAP as query language."""
    valid = table[table.n > 0]

    def mean(rows: pd.DataFrame) -> float | None:
        return round(float(rows["map"].mean()), 6) if len(rows) else None

    languages = dict.fromkeys(valid.query_lang)
    cross = valid[valid.setting == "cross"]
    return {lang: {"map_mono": mean(valid[(valid.setting == "mono") & (valid.query_lang == lang)]),
                   "map_cross_from": mean(cross[cross.query_lang == lang]),
                   "map_cross_to": mean(cross[cross.pool_lang == lang]),
                   "map_multi": mean(valid[(valid.setting == "multi") & (valid.query_lang == lang)])}
            for lang in languages}  # fmt: skip


def empty_summary() -> dict:
    keys = [eval_column(role, m) for role in EVAL_ROLES for m in (*EVAL_SUMMARY_METRICS, "set")]
    return dict.fromkeys(keys) | {"eval_languages_seen": None, eval_column("heldout", "by_lang"): None}


def evaluate(
    encoder: Encoder,
    eval_sets: list[EvalSet],
    seen_languages: tuple[str, ...] = (),
    batch_size: int = 256,
    query_chunk: int = 1024,
    on_encoded: Callable[[EvalSet, Encoded], None] | None = None,
    per_query: bool = False,
) -> EvalResult:
    """Encode, rank and summarise every evaluation set; `seen_languages` are the training languages.

    `on_encoded` (e.g. a BEIR/TREC exporter) is called with each set's embeddings, so they are computed once;
    `per_query` also returns every query's average precision (`query_table`).
    """
    start = time.perf_counter()
    seen = frozenset(seen_languages)
    summary, tables, summaries, queries = empty_summary(), [], {}, []
    for eval_set in eval_sets:
        if not eval_set.dataset.n_questions():
            raise DataError(f"evaluation set {eval_set.name} has no questions")
        encoded = encode_set(encoder, eval_set.dataset, batch_size)
        if on_encoded is not None:
            on_encoded(eval_set, encoded)
        ranks = rank_set(encoded, query_chunk)
        table = setting_table(eval_set.name, ranks, seen)
        tables.append(table)
        if per_query:
            queries.append(query_table(eval_set.name, ranks))
        summaries[eval_set.name] = summarize(table)
        if eval_set.summary_key is not None:
            summary |= {eval_column(eval_set.summary_key, k): v for k, v in summaries[eval_set.name].items()}
            summary[eval_column(eval_set.summary_key, "set")] = eval_set.name
        if eval_set.role == "heldout":
            summary[eval_column("heldout", "by_lang")] = json.dumps(by_language(table), sort_keys=True)
    evaluated = dict.fromkeys(lang for s in eval_sets for lang in s.dataset.languages)
    summary["eval_languages_seen"] = ",".join(lang for lang in evaluated if lang in seen)
    query_frame = pd.concat(queries, ignore_index=True) if queries else None
    return EvalResult(summary, pd.concat(tables, ignore_index=True), summaries, time.perf_counter() - start, query_frame)

