"""Reference levels for every quality metric, so a trained model's numbers can be read: chance, the lexical
floor, and a pretrained model before any training.

* chance: the expected value of a uniformly random ranking, exactly, from each query's pool size N and
  number of relevant candidates R (no sampling). AP: (H_N + (R-1)/(N-1) (N - H_N)) / N, since a
  relevant item at rank i has on average (R-1)(i-1)/(N-1) relevant items above it; recall@1: 1/N;
  nDCG@10: (R/N) sum_{i<=10} 1/log2(i+1) over its ideal; rank distance (max - min rank of the R
  relevant): (R-1)(N+1)/(R+1). Macro-averaged over settings exactly as `retrieval.summarize` does.
* lexical: `LexicalEncoder` (hashed character n-grams, nothing trained).
* zero-shot: a pretrained model as it comes (`stages.zero_shot_encoder`), when the sweep trains one.

A sweep writes them once to RESULTS_DIR/references.json; figures draw them as lines, reports as a table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from bench.evaluation.lexical import LexicalEncoder
from bench.evaluation.retrieval import FRAME_COLUMNS, Encoder, evaluate, summarize
from bench.evaluation.sets import EvalSet

REFERENCES_FILE = "references.json"


def chance_ap(n: int, r: int) -> float:
    harmonic = sum(1.0 / i for i in range(1, n + 1))
    return (harmonic + (r - 1) / (n - 1) * (n - harmonic)) / n if n > 1 else 1.0


def chance_ndcg10(n: int, r: int) -> float:
    discounts = [1.0 / math.log2(i + 1) for i in range(1, 11)]
    expected = sum(discounts[: min(10, n)]) * r / n
    return expected / sum(discounts[: min(r, 10)])


def _row(setting: str, query: str, pool: str, per_query: list[tuple[int, int]]) -> dict:
    """One setting of a random ranking: per_query holds (N, R) of each query."""
    n = len(per_query)
    row = {"dataset": "chance", "setting": setting, "query_lang": query, "pool_lang": pool, "n": n,
           "query_lang_seen_in_training": False, "pool_lang_seen_in_training": False}  # fmt: skip
    if not n:
        return row | {"map": float("nan"), "r1": float("nan"), "r10": float("nan"), "ndcg10": float("nan"), "rank_distance": None}
    mean = lambda f: sum(f(N, R) for N, R in per_query) / n  # noqa: E731
    return row | {"map": mean(chance_ap), "r1": mean(lambda N, R: 1.0 / N), "r10": mean(lambda N, R: min(10, N) / N),
                  "ndcg10": mean(chance_ndcg10),
                  "rank_distance": mean(lambda N, R: (R - 1) * (N + 1) / (R + 1)) if setting == "multi" else None}  # fmt: skip


def chance_table(eval_set: EvalSet) -> pd.DataFrame:
    """The per-setting table a random ranking would get, in `setting_table`'s layout."""
    data = eval_set.dataset
    languages = data.languages
    pools = {lang: len(data.by_lang[lang].candidates) for lang in languages}
    groups = {lang: {q.group_id for q in data.by_lang[lang].questions} for lang in languages}
    total = sum(pools.values())
    rows = []
    for x in languages:
        questions = data.by_lang[x].questions
        rows.append(_row("mono", x, x, [(pools[x], 1)] * len(questions)))
        for y in languages:
            if y != x:
                rows.append(_row("cross", x, y, [(pools[y], 1) for q in questions if q.group_id in groups[y]]))
        rows.append(_row("multi", x, "*", [(total, sum(q.group_id in groups[y] for y in languages)) for q in questions]))
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


def references(eval_sets: list[EvalSet], pretrained: tuple[str, Encoder] | None, batch_size: int, query_chunk: int) -> dict:
    """{set name: {"role", "chance": summary, "lexical": summary, "zero-shot <model>": summary}}."""
    out = {s.name: {"role": s.role, "chance": summarize(chance_table(s))} for s in eval_sets}
    lexical = evaluate(LexicalEncoder(), eval_sets, batch_size=batch_size, query_chunk=query_chunk)
    for name, summary in lexical.summaries.items():
        out[name]["lexical"] = summary
    if pretrained is not None:
        label, encoder = pretrained
        zero_shot = evaluate(encoder, eval_sets, batch_size=batch_size, query_chunk=query_chunk)
        for name, summary in zero_shot.summaries.items():
            out[name][f"zero-shot {label}"] = summary
    return out


def write_references(results_dir: Path, table: dict) -> Path:
    path = Path(results_dir) / REFERENCES_FILE
    existing = read_references(results_dir)
    for name, levels in table.items():
        existing.setdefault(name, {}).update(levels)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(existing, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read_references(results_dir: Path) -> dict:
    path = Path(results_dir) / REFERENCES_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
