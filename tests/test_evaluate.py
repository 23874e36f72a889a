"""`python -m bench.evaluate`: one-line errors with exit 2, outputs on disk; and EvalConfig validation."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from bench.errors import ConfigError
from bench.eval_config import EvalConfig
from bench.evaluate import main


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lexical", "--dataset", "no/such/beir-dir"], "dataset path not found"),
        (["--lexical", "--dataset", "xquad-r-heldout", "--languages", "en,xx"], "unknown language(s) xx"),
        (["--lexical", "--dataset", "squad"], "unknown dataset 'squad'"),
        (["--encoder", "no/such/encoder"], "encoder directory not found"),
        (["--lexical", "--run-depth", "-1"], "--run-depth must be >= 0"),
        (["--lexical", "--export-settings", "multi,all"], "--export-settings"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args, message, capsys):
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert "Traceback" not in err and out == ""


def test_no_traceback_from_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.evaluate", "--lexical", "--dataset", str(tmp_path / "missing")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: dataset path not found (or not a directory): {tmp_path / 'missing'}"]


def test_lexical_run_writes_summary_table_and_exports(tmp_path, capsys):
    args = ["--lexical", "--dataset", "xquad-r-heldout", "--languages", "en,zh", "--seen-languages", "en",
            "--out", str(tmp_path / "out"), "--export-beir", str(tmp_path / "beir"), "--run-depth", "5"]
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and "map_mono" in out and "xquad-r-heldout" in out
    payload = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert payload["encoder"] == "lexical" and payload["summary"]["eval_languages_seen"] == "en"
    assert 0 < payload["summary"]["eval_xquad_r_map_mono"] <= 1 and payload["summary"]["eval_mlqa_r_map_mono"] is None
    table = pd.read_parquet(tmp_path / "out" / "per_setting.parquet")
    assert table.groupby("setting").size().to_dict() == {"cross": 2, "mono": 2, "multi": 2}
    multi = tmp_path / "beir" / "xquad-r-heldout" / "multi"
    n_queries = len((multi / "queries.jsonl").read_text().splitlines())
    assert len((multi / "runs" / "bench.trec").read_text().splitlines()) == 5 * n_queries

    code, out, _ = run_cli(["--lexical", "--dataset", str(multi)], capsys)  # the export reads back as a BEIR set
    assert code == 0 and "ndcg10" in out and "multi" in out


def test_eval_config_from_dict():
    cfg = EvalConfig.from_dict({"datasets": ["xquad-r-heldout"], "languages": ["en", "de"], "batch_size": 64})
    assert cfg.datasets == ("xquad-r-heldout",) and cfg.languages == ("en", "de") and cfg.enabled
    assert EvalConfig.from_dict({"enabled": False}).enabled is False


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"batch_size": 0}, "eval.batch_size must be a positive integer, got 0"),
        ({"query_chunk": True}, "eval.query_chunk must be a positive integer"),
        ({"max_length": 2}, "eval.max_length must be at least 4"),
        ({"datasets": ["xquad"]}, "eval.datasets: unknown 'xquad'"),
        ({"datasets": "mlqa-r"}, "eval.datasets must be a list"),
        ({"datasets": ["xquad-r", "xquad-r-heldout"]}, "pick one"),
        ({"languages": []}, "eval.languages must be null or a non-empty list"),
        ({"batchsize": 8}, "unknown key(s) eval.batchsize"),
        ({"enabled": "yes"}, "eval.enabled must be true or false"),
    ],
)
def test_eval_config_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        EvalConfig.from_dict(raw)
