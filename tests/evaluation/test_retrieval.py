"""The LAReQA protocol: settings and their counts, a hand-computed toy set, summaries, seen-language marks."""

from __future__ import annotations

import dataclasses
import json
import zlib

import pytest
import torch

from bench.data.lareqa import Candidate, LanguageData, LareqaDataset, Question
from bench.errors import BenchError
from bench.config import plan_runs
from bench.evaluation.retrieval import by_language, encode_set, evaluate, rank_set, setting_table, summarize
from bench.evaluation.sets import EvalSet, eval_sets_for
from bench.results.schema import RunRecord


class HashEncoder:
    """Deterministic pseudo-random unit vectors, one per distinct text; counts its calls."""

    def __init__(self, dim: int = 16) -> None:
        self.dim = dim
        self.calls: list[int] = []

    def encode(self, texts: list[str], batch_size: int, kind: str = "passage") -> torch.Tensor:
        self.calls.append(len(texts))
        h = torch.tensor([zlib.crc32(t.encode()) for t in texts], dtype=torch.long).unsqueeze(1)
        h = h * 2654435761 + torch.arange(self.dim) * 40503  # int64 wraps: still deterministic
        h = (h ^ (h >> 13)) * 1274126177
        return torch.nn.functional.normalize(((h ^ (h >> 16)) % 2001 - 1000).float(), dim=1)


class TableEncoder:
    """Vectors looked up by text: the toy test chooses every score."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def encode(self, texts: list[str], batch_size: int, kind: str = "passage") -> torch.Tensor:
        return torch.tensor([self.table[t] for t in texts])


def toy_set() -> tuple[EvalSet, TableEncoder]:
    # Pool order: xx c0 c1 c2 | yy d0 d1. Candidates are one-hot, so a query's vector is its score row.
    cands = {"xx": ["c0", "c1", "c2"], "yy": ["d0", "d1"]}
    by_lang = {
        "xx": LanguageData("xx", (Question("g1", "xx", "q1", 0, 0), Question("g2", "xx", "q2", 0, 1)),
                           tuple(Candidate("xx", 0, 0, i, t) for i, t in enumerate(cands["xx"]))),
        "yy": LanguageData("yy", (Question("g1", "yy", "p1", 0, 0),),
                           tuple(Candidate("yy", 0, 0, i, t) for i, t in enumerate(cands["yy"]))),
    }
    table = {t: [float(i == j) for j in range(5)] for i, t in enumerate(cands["xx"] + cands["yy"])}
    table |= {"q1": [0.1, 0.5, 0.3, 0.2, 0.4], "q2": [0.0, 0.9, 0.0, 0.95, 0.0], "p1": [0.7, 0.0, 0.0, 0.7, 0.1]}
    return EvalSet("toy", "heldout", LareqaDataset("toy", by_lang, ("article",))), TableEncoder(table)


def test_toy_set_by_hand():
    eval_set, encoder = toy_set()
    table = setting_table("toy", rank_set(encode_set(encoder, eval_set.dataset, 8), query_chunk=2)).set_index(
        ["setting", "query_lang", "pool_lang"])
    # q1: multi ranks c0=5, d0=4; mono c0=3; cross d0=2. q2: multi c1=2; mono 1; no yy parallel.
    # p1: c0 and d0 tie at 0.7, c0 (lower index) first: multi 1, 2; mono d0=1; cross c0=1.
    assert table.loc[("mono", "xx", "xx"), "map"] == pytest.approx((1 / 3 + 1) / 2)
    assert table.loc[("mono", "yy", "yy"), "map"] == 1.0
    assert table.loc[("cross", "xx", "yy"), ["n", "map"]].tolist() == [1, 0.5]
    assert table.loc[("cross", "yy", "xx"), ["n", "map"]].tolist() == [1, 1.0]
    assert table.loc[("multi", "xx", "*"), "map"] == pytest.approx(((1 / 4 + 2 / 5) / 2 + 1 / 2) / 2)
    assert table.loc[("multi", "xx", "*"), "rank_distance"] == pytest.approx(0.5)
    assert table.loc[("multi", "yy", "*"), ["map", "rank_distance", "r1"]].tolist() == [1.0, 1.0, 0.5]
    summary = summarize(table.reset_index())
    assert summary["map_mono"] == pytest.approx((2 / 3 + 1) / 2)
    assert summary["map_cross"] == pytest.approx(0.75)
    assert summary["map_multi"] == pytest.approx((0.4125 + 1) / 2)
    assert summary["rank_distance"] == pytest.approx(0.75)
    assert summary["r1_multi"] == pytest.approx(0.25)
    assert pd_isnull(table.loc[("mono", "xx", "xx"), "rank_distance"])


def pd_isnull(value) -> bool:
    return value is None or value != value


def test_xquad_counts_and_each_text_encoded_once(xquad_split):
    _, heldout = xquad_split
    encoder = HashEncoder()
    result = evaluate(encoder, [EvalSet("xquad-r-heldout", "heldout", heldout)], seen_languages=("en", "de"))
    table = result.table
    counts = table.groupby("setting").size().to_dict()
    assert counts == {"mono": 11, "cross": 110, "multi": 11}
    assert set(table.loc[table.setting == "multi", "pool_lang"]) == {"*"}  # one multilingual pool
    per_lang = {lang: len(d.questions) for lang, d in heldout.by_lang.items()}
    assert len(set(per_lang.values())) == 1  # fully parallel: every pair keeps every query
    cross = table[table.setting == "cross"]
    assert (cross.n == cross.query_lang.map(per_lang)).all()
    assert encoder.calls == [heldout.n_questions(), heldout.n_candidates()]
    assert 0.0 < result.summary["eval_heldout_map_mono"] < 1.0


def test_mlqa_pairs_drop_queries_without_a_parallel(mlqa):
    result = evaluate(HashEncoder(8), [EvalSet("mlqa-r", "zeroshot", mlqa)])
    table = result.table
    assert table.groupby("setting").size().to_dict() == {"mono": 7, "cross": 42, "multi": 7}
    groups = {lang: {q.group_id for q in d.questions} for lang, d in mlqa.by_lang.items()}
    cross = table[table.setting == "cross"]
    expected = [len(groups[x] & groups[y]) for x, y in zip(cross.query_lang, cross.pool_lang)]
    assert cross.n.tolist() == expected
    assert (cross.n < cross.query_lang.map(lambda x: len(groups[x]))).any()
    multi = table[table.setting == "multi"]
    assert multi.n.sum() == mlqa.n_questions()
    assert result.summary["eval_zeroshot_map_multi"] is not None and result.summary["eval_heldout_map_multi"] is None
    assert result.summary["eval_zeroshot_set"] == "mlqa-r"


def test_summary_keys_are_the_schema_columns_and_seen_marks(xquad_split):
    _, heldout = xquad_split
    small = heldout.restrict_articles({min(q.article for q in heldout.by_lang["en"].questions)}, "one")
    result = evaluate(HashEncoder(), [EvalSet("xquad-r-heldout", "heldout", small)], seen_languages=("en", "de", "xx"))
    # eval_s is the stage's time and eval_precision a setting (recorded by describe), not results
    schema_eval = {f.name for f in dataclasses.fields(RunRecord) if f.name.startswith("eval_")} - {"eval_s", "eval_precision"}
    assert set(result.summary) == schema_eval
    RunRecord(run_id="r", config_hash="c").update(**result.summary)
    assert result.summary["eval_languages_seen"] == "en,de"  # in evaluation order, only evaluated languages
    t = result.table
    assert set(t.loc[t.query_lang_seen_in_training, "query_lang"]) == {"en", "de"}
    assert not t.loc[t.setting == "multi", "pool_lang_seen_in_training"].any()  # the pool holds unseen languages
    assert t.loc[(t.setting == "cross") & (t.query_lang == "en") & (t.pool_lang == "de"), "pool_lang_seen_in_training"].item()


def test_macro_averages_over_settings_not_queries(mlqa):
    table = setting_table("mlqa-r", rank_set(encode_set(HashEncoder(8), mlqa, 512)))
    summary = summarize(table)
    cross = table[table.setting == "cross"]
    assert summary["map_cross"] == pytest.approx(cross["map"].mean())
    assert summary["map_cross"] != pytest.approx((cross["map"] * cross.n).sum() / cross.n.sum())


def eval_sets(*overrides: str) -> list[EvalSet]:
    (planned,) = plan_runs("config", list(overrides), sweep=False)
    return eval_sets_for(planned.config.eval, planned.config.data)


def test_eval_sets_come_from_the_data_and_eval_config():
    by_name = {s.name: s for s in eval_sets("eval=full", "eval.languages=[en,th,de]")}
    assert list(by_name) == ["xquad-r-heldout", "mlqa-r", "xquad-r-train"]
    assert by_name["mlqa-r"].dataset.languages == ("de", "en")  # th is XQuAD-only: skipped for MLQA-R
    assert by_name["mlqa-r"].summary_key == "zeroshot" and by_name["xquad-r-heldout"].summary_key == "heldout"
    assert by_name["xquad-r-train"].summary_key is None
    assert by_name["xquad-r-heldout"].dataset.languages == ("en", "de", "th")  # the data's order
    en_only = {s.role: s for s in eval_sets("eval.sets=[heldout,train]", "eval.languages=[en]")}
    assert en_only["train"].dataset.n_questions() + en_only["heldout"].dataset.n_questions() == 1190
    with pytest.raises(BenchError, match=r"eval\.languages: unknown code\(s\) xx"):
        eval_sets("eval.languages=[en,xx]")
    with pytest.raises(BenchError, match=r"eval\.sets: unknown 'squad'"):
        eval_sets("eval.sets=[squad]")


def test_per_language_summary_of_the_heldout_set(xquad_split):
    _, heldout = xquad_split
    small = heldout.restrict_articles({min(q.article for q in heldout.by_lang["en"].questions)}, "one")
    result = evaluate(HashEncoder(), [EvalSet("xquad-r-heldout", "heldout", small)])
    per_lang = json.loads(result.summary["eval_heldout_by_lang"])
    assert set(per_lang) == set(small.languages)
    t = result.table
    en = t[(t.query_lang == "en")]
    assert per_lang["en"]["map_mono"] == pytest.approx(en[en.setting == "mono"]["map"].item(), abs=1e-6)
    assert per_lang["en"]["map_cross_from"] == pytest.approx(en[en.setting == "cross"]["map"].mean(), abs=1e-6)
    assert per_lang == by_language(t)


def test_ties_favour_no_language():
    """With every score equal, the ranking is the seeded tie order: languages interleave, none comes first."""

    class Constant:
        def encode(self, texts, batch_size, kind="passage"):
            return torch.nn.functional.normalize(torch.ones(len(texts), 4), dim=1)

    (heldout,) = eval_sets("eval.sets=[heldout]", "eval.languages=[ar,de,th,zh]")
    table = evaluate(Constant(), [heldout]).table
    encoded = encode_set(Constant(), heldout.dataset, 256)
    # Under a uniformly random tie order, k relevant answers in a pool of C have an expected rank range of
    # (C + 1)(k - 1)/(k + 1): 0.6 C for k = 4. Pool-order ties (one answer per language block) give about
    # 0.75 C, so this fails if ties follow the pool (planted: tie_seed=None in rank_set: the ratio is 1.25).
    k = (encoded.relevant >= 0).sum(1).double()
    expected = ((encoded.candidates.shape[0] + 1) * (k - 1) / (k + 1)).mean().item()
    multi = table[table.setting == "multi"]
    observed = float((multi["rank_distance"] * multi["n"]).sum() / multi["n"].sum())
    assert abs(observed / expected - 1) < 0.05, (observed, expected)
    ranks = rank_set(encoded).pool.float()
    by_answer_lang = [ranks[:, k][ranks[:, k] > 0].mean().item() for k in range(len(encoded.languages))]
    assert max(by_answer_lang) / min(by_answer_lang) < 1.1  # with pool-order ties ar's answers would rank first
