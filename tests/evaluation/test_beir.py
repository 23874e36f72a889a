"""BEIR export/import and TREC runs: pytrec_eval (trec_eval) must reproduce our exact metrics, ties included."""

from __future__ import annotations

import json
import random

import pytest
import pytrec_eval

from bench.evaluation.beir import BeirSet, evaluate_beir, export_lareqa, load_beir, write_beir, write_run
from bench.errors import DataError
from bench.evaluation.lexical import LexicalEncoder, similarity
from bench.data.lareqa import load_lareqa
from bench.evaluation.retrieval import encode_set, rank_set, setting_table
from bench.evaluation.sets import EvalSet

MEASURES = {"map", "ndcg_cut.10", "recall.1,10"}
OURS_TO_TREC = {"ap": "map", "ndcg10": "ndcg_cut_10", "r1": "recall_1", "r10": "recall_10"}


def trec_eval(directory) -> dict[str, dict[str, float]]:
    qrels: dict[str, dict[str, int]] = {}
    lines = (directory / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "query-id\tcorpus-id\tscore"
    for line in lines[1:]:
        query, doc, score = line.split("\t")
        qrels.setdefault(query, {})[doc] = int(score)
    with (directory / "runs" / "bench.trec").open(encoding="utf-8") as handle:
        run = pytrec_eval.parse_run(handle)
    return pytrec_eval.RelevanceEvaluator(qrels, MEASURES).evaluate(run)


def assert_agree(per_query, reference) -> None:
    assert set(per_query.query_id) == set(reference)
    for row in per_query.itertuples():
        for ours, theirs in OURS_TO_TREC.items():
            assert getattr(row, ours) == pytest.approx(reference[row.query_id][theirs], abs=1e-6), (row.query_id, ours)


@pytest.fixture(scope="module")
def small_set() -> EvalSet:
    # Four languages, two scripts that share no n-gram with Latin: many exact ties at score 0.
    full = load_lareqa("xquad-r", "data/lareqa/xquad-r", ("ar", "de", "en", "zh"))
    return EvalSet("xquad-r-small", "all", full.restrict_articles({0}, "small"))


@pytest.fixture(scope="module")
def exported(small_set, tmp_path_factory):
    encoded = encode_set(LexicalEncoder(), small_set.dataset, 64)
    directory = tmp_path_factory.mktemp("beir")
    paths = export_lareqa(small_set, encoded, directory, depth=0, kinds=("multi", "mono", "cross"))
    return encoded, {p.name: p for p in paths}


def test_pytrec_eval_reproduces_our_metrics_on_every_setting(exported):
    _, paths = exported
    assert len(paths) == 1 + 4 + 12
    for name in ("multi", "mono-en", "mono-zh", "cross-zh-ar", "cross-en-de"):
        _, per_query = evaluate_beir(LexicalEncoder(), load_beir(paths[name]))
        assert_agree(per_query, trec_eval(paths[name]))


def test_the_agreement_covers_ties(exported):
    _, paths = exported
    run = pytrec_eval.parse_run((paths["multi"] / "runs" / "bench.trec").open(encoding="utf-8"))
    qrels = [line.split("\t") for line in (paths["multi"] / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    tied = 0
    for query, doc, _ in qrels:
        scores = list(run[query].values())
        tied += scores.count(run[query][doc]) > 1
    assert tied > 50  # relevant documents sharing their exact score with others


def test_beir_round_trip_matches_the_lareqa_table(small_set, exported):
    encoded, paths = exported
    table = setting_table(small_set.name, rank_set(encoded)).set_index(["setting", "query_lang", "pool_lang"])
    for setting, key in (("mono-en", ("mono", "en", "en")), ("cross-zh-ar", ("cross", "zh", "ar"))):
        summary, _ = evaluate_beir(LexicalEncoder(), load_beir(paths[setting]))
        assert summary["map"] == pytest.approx(table.loc[key, "map"], abs=1e-12)
        assert summary["n"] == table.loc[key, "n"]
    _, per_query = evaluate_beir(LexicalEncoder(), load_beir(paths["multi"]))
    by_lang = per_query.assign(lang=per_query.query_id.str.split(".").str[0]).groupby("lang").ap.mean()
    for lang, value in by_lang.items():
        assert value == pytest.approx(table.loc[("multi", lang, "*"), "map"], abs=1e-12)


def test_doc_ids_count_down_in_the_seeded_tie_order(exported):
    encoded, paths = exported
    corpus = [json.loads(line) for line in (paths["multi"] / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    ids = [c["_id"] for c in corpus]
    assert len(ids) == encoded.candidates.shape[0]
    assert ids == sorted(ids, reverse=True)  # decreasing docno = the tie order the export is written in
    assert load_beir(paths["multi"]).doc_ids == tuple(ids) and corpus[0]["title"] == ""
    assert len({i.split(".")[1] for i in ids[:40]}) == 4  # ties favour no language (pool order would put ar first)


def test_arbitrary_ids_with_ties_and_run_depth(tmp_path):
    rng = random.Random(0)
    texts = ["red apple", "green apple", "red apple", "blue sky", "apple", "sky", "red apple", "apple pie"]
    ids = [f"{rng.choice('abcxyz')}{rng.randrange(1000)}" for _ in texts]
    assert len(set(ids)) == len(ids)
    corpus = [{"_id": i, "title": "", "text": t} for i, t in zip(ids, texts)]
    rng.shuffle(corpus)
    queries = {"q1": "red apple", "q2": "sky", "q3": "apple"}
    qrels = {"q1": [ids[2], ids[6]], "q2": [ids[5]], "q3": [ids[4], ids[7], ids[0]]}
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(c) + "\n" for c in corpus))
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items()))
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t1\n" for q, docs in qrels.items() for d in docs) + f"q1\t{ids[3]}\t0\n")
    beir = load_beir(tmp_path)
    assert list(beir.doc_ids) == sorted(ids, key=str.encode, reverse=True)
    enc = LexicalEncoder()
    write_run(tmp_path / "runs" / "bench.trec", beir, enc.encode(list(beir.queries)), enc.encode(list(beir.docs)), depth=0)
    _, per_query = evaluate_beir(enc, beir)
    assert_agree(per_query, trec_eval(tmp_path))

    write_run(tmp_path / "short.trec", beir, enc.encode(list(beir.queries)), enc.encode(list(beir.docs)), depth=3, tag="t")
    lines = [line.split() for line in (tmp_path / "short.trec").read_text().splitlines()]
    assert len(lines) == 3 * 3 and all(len(parts) == 6 and parts[1] == "Q0" and parts[5] == "t" for parts in lines)
    assert [int(parts[3]) for parts in lines[:3]] == [1, 2, 3]
    scores = similarity(enc.encode([queries["q1"]]), enc.encode(list(beir.docs)))[0]
    assert float(lines[0][4]) == scores.max().item()  # exact float round trip


def test_write_beir_and_missing_files(tmp_path):
    beir = BeirSet("t", ("q",), ("query",), ("d1", "d0"), ("one", "two"), {"q": {"d0"}})
    write_beir(beir, tmp_path / "t")
    assert load_beir(tmp_path / "t") == BeirSet("t", ("q",), ("query",), ("d1", "d0"), ("one", "two"), {"q": {"d0"}})
    (tmp_path / "t" / "queries.jsonl").unlink()
    with pytest.raises(DataError, match="queries.jsonl"):
        load_beir(tmp_path / "t")
    with pytest.raises(DataError, match="not found"):
        load_beir(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no query has a relevant"):
        evaluate_beir(LexicalEncoder(), BeirSet("t", ("q",), ("x",), ("d",), ("y",), {}))
    (tmp_path / "t" / "queries.jsonl").write_text('{"_id": "q", "text": "x"}\n')
    with (tmp_path / "t" / "corpus.jsonl").open("a") as handle:
        handle.write('{"_id": "d0", "text": "again"}\n')
    with pytest.raises(DataError, match="duplicate"):
        load_beir(tmp_path / "t")
