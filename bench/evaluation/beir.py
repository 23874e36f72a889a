"""BEIR-format export and import, and TREC run files that trec_eval scores exactly as we do.

Layout of one exported setting (a pool and its queries):
    <dir>/corpus.jsonl       {"_id", "title", "text", "metadata": {"lang"}}  (title is empty:
                             LAReQA candidates are bare sentences)
    <dir>/queries.jsonl      {"_id", "text", "metadata": {"lang"}}
    <dir>/qrels/test.tsv     query-id <tab> corpus-id <tab> score (1 = relevant)
    <dir>/runs/<tag>.trec    qid Q0 docid rank score tag, best first, `depth` lines per query

Ties. Our metrics break equal scores by a tie order (for a LAReQA set, a permutation of the
pool seeded per set: `metrics.tie_positions`); trec_eval (and pytrec_eval, which embeds it)
ignores the rank column, re-sorts by score and breaks equal scores by docno in *decreasing*
strcmp order. Scores are written exactly (the shortest decimal that reads back as the same
float, so equal scores stay equal and distinct ones distinct), and tied documents are not nudged
apart. Instead an exported pool lists its documents in tie order, and their ids start with a
zero-padded countdown, `f"{n - 1 - i:0{w}d}.{lang}.{article}.{paragraph}.{sentence}"` for the
i-th document in tie order, so decreasing docno order *is* the tie order (written into the
export this way) and both tools rank every tie identically. When a BEIR directory is loaded, its documents are put in decreasing id order
(bytes, as strcmp compares UTF-8) and that order is the candidate index, so our numbers
agree with trec_eval for any ids, and loading our own export reproduces the LAReQA pool order.
Relevance is binary: a qrels score > 0 is relevant (graded BEIR qrels would give trec_eval's
nDCG graded gains; AP and recall are unaffected).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from bench.errors import DataError
from bench.evaluation.metrics import rank_relevant, ranking_metrics, tie_positions
from bench.evaluation.retrieval import Encoded, Encoder, EvalSet, row_slice, similarity

SPLIT = "test"
RUN_TAG = "bench"
SETTINGS = ("multi", "mono", "cross")


@dataclass(frozen=True)
class BeirSet:
    """Queries, a corpus in candidate-index order, and binary qrels."""

    name: str
    query_ids: tuple[str, ...]
    queries: tuple[str, ...]
    doc_ids: tuple[str, ...]
    docs: tuple[str, ...]
    qrels: dict[str, set[str]]  # query id -> relevant doc ids
    query_langs: tuple[str, ...] | None = None
    doc_langs: tuple[str, ...] | None = None

    def relevant(self) -> tuple[list[int], torch.Tensor]:
        """(rows of queries with a relevant document in the corpus, their (Q, R) doc indices, -1 padded)."""
        position = {doc: i for i, doc in enumerate(self.doc_ids)}
        lists = [sorted(position[d] for d in self.qrels.get(q, ()) if d in position) for q in self.query_ids]
        rows = [i for i, docs in enumerate(lists) if docs]
        width = max((len(lists[i]) for i in rows), default=1)
        relevant = torch.full((len(rows), width), -1, dtype=torch.long)
        for out, i in enumerate(rows):
            relevant[out, : len(lists[i])] = torch.tensor(lists[i])
        return rows, relevant


# --- reading and writing the BEIR files ---


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(f"BEIR file not found: {path}")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                    rows.append({"_id": str(row["_id"]), "text": row.get("text", ""), "title": row.get("title", "")})
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise DataError(f"{path}:{number} is not a BEIR record ({type(exc).__name__}: {exc})") from None
    return rows


def _read_qrels(path: Path) -> dict[str, set[str]]:
    if not path.is_file():
        raise DataError(f"BEIR qrels not found: {path}")
    qrels: dict[str, set[str]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\n").split("\t")
            if number == 1 and fields[0] == "query-id":
                continue
            if len(fields) != 3:
                raise DataError(f"{path}:{number} needs query-id, corpus-id, score separated by tabs")
            try:
                relevant = float(fields[2]) > 0
            except ValueError:
                raise DataError(f"{path}:{number} has a non-numeric score {fields[2]!r}") from None
            if relevant:
                qrels.setdefault(fields[0], set()).add(fields[1])
    return qrels


def load_beir(directory: str | Path, split: str = SPLIT) -> BeirSet:
    """Read a BEIR directory; documents are ordered by decreasing id (trec_eval's tie order)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"BEIR directory not found: {directory}")
    corpus = sorted(_read_jsonl(directory / "corpus.jsonl"), key=lambda r: r["_id"].encode("utf-8"), reverse=True)
    queries = _read_jsonl(directory / "queries.jsonl")
    qrels = _read_qrels(directory / "qrels" / f"{split}.tsv")
    if not corpus or not queries:
        raise DataError(f"BEIR directory {directory} has an empty corpus or no queries")
    for kind, rows in (("corpus", corpus), ("query", queries)):
        if len({r["_id"] for r in rows}) != len(rows):
            raise DataError(f"BEIR directory {directory}: duplicate {kind} ids")
    return BeirSet(
        name=directory.name,
        query_ids=tuple(q["_id"] for q in queries),
        queries=tuple(q["text"] for q in queries),
        doc_ids=tuple(d["_id"] for d in corpus),
        docs=tuple(f"{d['title']} {d['text']}".strip() for d in corpus),  # BEIR's usual title + text
        qrels=qrels,
    )


def write_beir(beir: BeirSet, directory: str | Path, split: str = SPLIT) -> Path:
    """Write corpus.jsonl, queries.jsonl and qrels/<split>.tsv (documents in index order)."""
    directory = Path(directory)
    (directory / "qrels").mkdir(parents=True, exist_ok=True)
    doc_langs = beir.doc_langs or ("",) * len(beir.doc_ids)
    query_langs = beir.query_langs or ("",) * len(beir.query_ids)
    with (directory / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for doc_id, text, lang in zip(beir.doc_ids, beir.docs, doc_langs):
            out.write(json.dumps({"_id": doc_id, "title": "", "text": text, "metadata": {"lang": lang}}, ensure_ascii=False) + "\n")
    with (directory / "queries.jsonl").open("w", encoding="utf-8") as out:
        for query_id, text, lang in zip(beir.query_ids, beir.queries, query_langs):
            out.write(json.dumps({"_id": query_id, "text": text, "metadata": {"lang": lang}}, ensure_ascii=False) + "\n")
    with (directory / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for query_id in beir.query_ids:
            for doc_id in sorted(beir.qrels.get(query_id, ())):
                out.write(f"{query_id}\t{doc_id}\t1\n")
    return directory


def write_run(path: Path, beir: BeirSet, queries: torch.Tensor, docs: torch.Tensor, depth: int = 0,
              tag: str = RUN_TAG, chunk: int = 256) -> Path:
    """TREC run of the embeddings' scores: per query the top `depth` documents (0: all), best first.

    Order is score descending, ties by lower index (a stable sort); scores are exact (see module doc).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = len(beir.doc_ids) if depth <= 0 else min(depth, len(beir.doc_ids))
    with path.open("w", encoding="utf-8") as out:
        for lo in range(0, len(beir.query_ids), chunk):
            scores = similarity(row_slice(queries, lo, min(lo + chunk, len(beir.query_ids))), docs)
            best = torch.sort(scores, dim=1, descending=True, stable=True)
            for row, (values, order) in enumerate(zip(best.values[:, :keep].tolist(), best.indices[:, :keep].tolist())):
                qid = beir.query_ids[lo + row]
                out.writelines(f"{qid} Q0 {beir.doc_ids[d]} {r} {s!r} {tag}\n" for r, (d, s) in enumerate(zip(order, values), 1))
    return path


# --- evaluating an encoder on a BEIR set with our exact metrics ---


def evaluate_beir(encoder: Encoder, beir: BeirSet, batch_size: int = 256, query_chunk: int = 1024) -> tuple[dict, pd.DataFrame]:
    """(summary {n, map, r1, r10, ndcg10}, per-query table) over queries with a relevant document."""
    rows, relevant = beir.relevant()
    if not rows:
        raise DataError(f"BEIR set {beir.name}: no query has a relevant document in the corpus")
    queries = encoder.encode([beir.queries[i] for i in rows], batch_size, kind="query")
    docs = encoder.encode(list(beir.docs), batch_size, kind="passage")
    return score_beir(beir, rows, relevant, queries, docs, query_chunk)


def score_beir(beir: BeirSet, rows: list[int], relevant: torch.Tensor, queries: torch.Tensor, docs: torch.Tensor,
               query_chunk: int = 1024) -> tuple[dict, pd.DataFrame]:
    ranks = torch.cat([
        rank_relevant(similarity(row_slice(queries, lo, min(lo + query_chunk, len(rows))), docs), relevant[lo : lo + query_chunk]).pool
        for lo in range(0, len(rows), query_chunk)
    ])
    metrics = ranking_metrics(ranks)
    table = pd.DataFrame({
        "query_id": [beir.query_ids[i] for i in rows],
        "ap": metrics.ap.numpy(), "r1": metrics.r1.numpy(), "r10": metrics.r10.numpy(), "ndcg10": metrics.ndcg10.numpy(),
    })
    summary = {"dataset": beir.name, "n": len(rows)} | {k: float(table[k].mean()) for k in ("ap", "r1", "r10", "ndcg10")}
    summary["map"] = summary.pop("ap")
    return summary, table


# --- LAReQA settings as BEIR sets ---


def doc_id_width(n: int) -> int:
    return len(str(max(n - 1, 0)))


def lareqa_setting(eval_set: EvalSet, encoded: Encoded, setting: str) -> tuple[BeirSet, torch.Tensor, torch.Tensor]:
    """One setting ("multi", "mono-<X>", "cross-<X>-<Y>") as (BeirSet, query rows, candidate rows in document order)."""
    langs = encoded.languages
    kind, *codes = setting.split("-")
    if kind not in SETTINGS or any(c not in langs for c in codes) or len(codes) != {"multi": 0, "mono": 1, "cross": 2}[kind]:
        raise DataError(f"unknown setting {setting!r} for languages {', '.join(langs)}")
    questions = [q for lang in langs for q in eval_set.dataset.by_lang[lang].questions]
    pool = [c for lang in langs for c in eval_set.dataset.by_lang[lang].candidates]
    rows = torch.arange(len(questions))
    lo, hi = 0, len(pool)
    if codes:  # mono or cross: queries of X, the pool of Y (Y = X for mono)
        x, y = langs.index(codes[0]), langs.index(codes[-1])
        rows = rows[(encoded.query_lang == x) & (encoded.relevant[:, y] >= 0)]
        lo, hi = (encoded.block_starts.tolist() + [len(pool)])[y : y + 2]
    ties = tie_positions(len(pool), encoded.tie_seed)
    order = sorted(range(lo, hi), key=lambda c: int(ties[c]))  # the pool's candidates in tie order
    candidates = [pool[c] for c in order]
    width = doc_id_width(len(candidates))
    doc_ids = tuple(f"{len(candidates) - 1 - i:0{width}d}.{c.lang}.{c.article}.{c.paragraph}.{c.sentence}"
                    for i, c in enumerate(candidates))  # fmt: skip
    doc_of = {c: doc_ids[i] for i, c in enumerate(order)}
    chosen = [questions[i] for i in rows.tolist()]
    query_ids = tuple(f"{q.lang}.{q.group_id}" for q in chosen)
    qrels = {qid: {doc_of[c] for c in columns if lo <= c < hi}
             for qid, columns in zip(query_ids, encoded.relevant[rows].tolist())}
    beir = BeirSet(f"{eval_set.name}/{setting}", query_ids, tuple(q.text for q in chosen), doc_ids,
                   tuple(c.text for c in candidates), qrels, tuple(q.lang for q in chosen), tuple(c.lang for c in candidates))
    return beir, rows, torch.tensor(order, dtype=torch.long)


def setting_names(languages: tuple[str, ...], kinds: tuple[str, ...] = ("multi",)) -> list[str]:
    names = ["multi"] if "multi" in kinds else []
    names += [f"mono-{x}" for x in languages] if "mono" in kinds else []
    names += [f"cross-{x}-{y}" for x in languages for y in languages if x != y] if "cross" in kinds else []
    return names


def export_lareqa(eval_set: EvalSet, encoded: Encoded, directory: str | Path, depth: int = 0,
                  kinds: tuple[str, ...] = ("multi",), tag: str = RUN_TAG) -> list[Path]:
    """Write each chosen setting of an encoded LAReQA set as a BEIR directory plus its TREC run."""
    written = []
    for setting in setting_names(encoded.languages, kinds):
        beir, rows, documents = lareqa_setting(eval_set, encoded, setting)
        target = write_beir(beir, Path(directory) / eval_set.name / setting)
        queries = take_rows(encoded.queries, rows)
        write_run(target / "runs" / f"{tag}.trec", beir, queries, take_rows(encoded.candidates, documents), depth, tag)
        written.append(target)
    return written


def take_rows(matrix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    return matrix.index_select(0, rows).coalesce() if matrix.is_sparse else matrix[rows]
