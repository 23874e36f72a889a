"""A dataset brought by the user, with a language this project has never seen, is trained on and evaluated.

The test writes a small LAReQA-style dataset (SQuAD JSON with sentence breaks): English and German
from XQuAD-R, plus "xx", English rewritten letter by letter into another alphabet (a language no
shipped vocabulary or evaluation set knows), and points a run at it with `data.root`/`data.languages`.
"""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest
from accelerate.state import AcceleratorState

from bench import PROJECT_ROOT
from bench.run import run_and_record
from tests.conftest import compose, quick_run

ARTICLES = 8  # enough for a held-out part (25%: 2 articles) and training pairs


def rewrite(text: str, shift: int = 0) -> str:
    """English in Cyrillic-like letters: same lengths and offsets, nothing in common with en's tokens;
    another `shift` is another alphabet (questions and passages then share no letters)."""
    table = {c: chr(0x0430 + (ord(c) - ord("a") + shift) % 32) for c in "abcdefghijklmnopqrstuvwxyz"}
    return "".join(table.get(c, table.get(c.lower(), c).upper() if c.isalpha() else c) for c in text)


def write_dataset(root, passage_shift: int = 0) -> None:
    root.mkdir(parents=True)
    for lang in ("en", "de"):
        with gzip.open(PROJECT_ROOT / "data" / "lareqa" / "xquad-r" / f"{lang}.json.gz", "rt", encoding="utf-8") as handle:
            payload = json.load(handle)
        payload["data"] = payload["data"][:ARTICLES]
        with gzip.open(root / f"{lang}.json.gz", "wt", encoding="utf-8") as out:
            json.dump(payload, out)
        if lang == "en":  # xx: the same articles and question ids, every text rewritten (offsets unchanged)
            for article in payload["data"]:
                for paragraph in article["paragraphs"]:
                    paragraph["context"] = rewrite(paragraph["context"], passage_shift)
                    for qa in paragraph["qas"]:
                        qa["question"] = rewrite(qa["question"])
            with gzip.open(root / "xx.json.gz", "wt", encoding="utf-8") as out:
                json.dump(payload, out)


@pytest.mark.slow
def test_an_unseen_language_is_trained_on_and_evaluated(tmp_path):
    AcceleratorState._reset_state(reset_partial_state=True)
    write_dataset(tmp_path / "mydata")
    cfg = compose("data.name=mydata", f"data.root={tmp_path / 'mydata'}", "data.languages=[en,de,xx]", "languages=[en,xx]",
                  "strategy=hybrid", *quick_run(steps=6, batch_size=8), f"tokenizer.cache_dir={tmp_path / 'vocab'}",
                  "tokenizer.vocab_size=3000", f"results.dir={tmp_path / 'results'}")  # fmt: skip
    record = run_and_record(cfg)
    assert record.status == "ok", record.error_message
    assert record.languages_seen == "en,xx"
    assert record.eval_heldout_set == "mydata-heldout"
    assert set(json.loads(record.unk_rate_by_lang)) == {"en", "de", "xx"}
    per_lang = json.loads(record.eval_heldout_by_lang)
    assert set(per_lang) == {"en", "de", "xx"} and all(per_lang["xx"][k] is not None for k in per_lang["xx"])
    table = pd.read_parquet(tmp_path / "results" / "eval" / f"{record.run_id}.parquet")
    xx = table[(table.query_lang == "xx") | (table.pool_lang == "xx")]
    assert set(xx.setting) == {"mono", "cross", "multi"}
    assert len(xx[xx.setting == "cross"]) == 4  # xx->en, xx->de, en->xx, de->xx
    assert xx[xx.setting == "mono"]["query_lang_seen_in_training"].all()
    assert not table[table.query_lang == "de"]["query_lang_seen_in_training"].any()


def test_the_new_language_is_evaluated_on_its_own_queries_and_its_metrics_follow_its_data(tmp_path):
    """Lexical retrieval (nothing trained) on the user's held-out articles: xx's rows are xx's own questions in
    every setting, with their own ids; and when only xx's passages change (another alphabet, so they share
    no letters with xx's questions), only xx's numbers move: its mono mAP falls to near chance."""
    from bench.evaluation.lexical import LexicalEncoder
    from bench.evaluation.retrieval import evaluate
    from bench.evaluation.sets import eval_sets_for

    def evaluate_variant(name: str, passage_shift: int):
        write_dataset(tmp_path / name, passage_shift)
        cfg = compose("data.name=mydata", f"data.root={tmp_path / name}", "data.languages=[en,de,xx]", "languages=[en,xx]")
        (heldout,) = eval_sets_for(cfg.eval, cfg.data)
        result = evaluate(LexicalEncoder(), [heldout], cfg.languages, per_query=True)
        return heldout, result.table.set_index(["setting", "query_lang", "pool_lang"]), result.per_query

    heldout, table, per_query = evaluate_variant("same", 0)
    xx_ids = {q.group_id for q in heldout.dataset.by_lang["xx"].questions}
    assert len(xx_ids) == len(heldout.dataset.by_lang["xx"].questions) > 0
    for setting, pool in (("mono", "xx"), ("cross", "en"), ("cross", "de"), ("multi", "*")):
        rows = per_query[(per_query.setting == setting) & (per_query.query_lang == "xx") & (per_query.pool_lang == pool)]
        assert set(rows.query_id) == xx_ids and len(rows) == len(xx_ids), (setting, pool)  # its own queries, each once
        assert table.loc[(setting, "xx", pool), "n"] == len(xx_ids)
    assert table.loc[("mono", "xx", "xx"), "map"] == pytest.approx(table.loc[("mono", "en", "en"), "map"], abs=0.05)

    _, scrambled, _ = evaluate_variant("scrambled", 7)
    assert scrambled.loc[("mono", "xx", "xx"), "map"] < 0.5 * table.loc[("mono", "xx", "xx"), "map"]  # xx's data moved it
    for key in (("mono", "en", "en"), ("mono", "de", "de"), ("cross", "en", "de")):
        assert scrambled.loc[key, "map"] == pytest.approx(table.loc[key, "map"], abs=1e-12)  # and nothing else
