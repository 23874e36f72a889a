"""`python -m bench.evaluate`: one-line errors with exit 2, outputs on disk; and EvalConfig validation."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pandas as pd
import pytest

from bench.errors import ConfigError
from bench.config import plan_runs
from bench.evaluate import main
from bench.measure.sidecar import provenance_gaps, read_provenance


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
        (["--lexical", "--beir", "no/such/beir-dir"], "BEIR directory not found"),
        (["--lexical", "eval.languages=[en,xx]"], "eval.languages: unknown code(s) xx"),
        (["--lexical", "eval.sets=[squad]"], "eval.sets: unknown 'squad'"),
        (["--encoder", "no/such/encoder"], "encoder directory not found"),
        (["--lexical", "--run-depth", "-1"], "--run-depth must be >= 0"),
        (["--lexical", "--export-settings", "multi,all"], "--export-settings"),
        (["model=tiny"], "model=tiny has no pretrained weights to evaluate zero-shot"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args, message, capsys):
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert "Traceback" not in err and out == ""


def test_no_traceback_from_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.evaluate", "--lexical", "--beir", str(tmp_path / "missing")],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: BEIR directory not found: {tmp_path / 'missing'}"]


def test_lexical_run_writes_summary_table_and_full_pool_exports(tmp_path, capsys):
    args = ["--lexical", "eval.languages=[en,zh]", "--seen-languages", "en",
            "--out", str(tmp_path / "out"), "--export-beir", str(tmp_path / "beir")]  # fmt: skip
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and "map_mono" in out and "xquad-r-heldout" in out
    payload = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert payload["encoder"] == "lexical" and payload["summary"]["eval_languages_seen"] == "en"
    assert payload["command"] == "python -m bench.evaluate " + shlex.join(args)  # exactly as typed, pasteable
    for written in ("summary.json", "per_setting.parquet"):  # each evidence file says where it came from
        provenance = read_provenance(tmp_path / "out" / written)
        assert provenance["command"] == payload["command"] and len(provenance["git_commit"]) == 40
        assert isinstance(provenance["git_dirty"], bool) and provenance["calibration"]["matmul_gflops"] > 0
        assert [gap for gap in provenance_gaps(provenance) if "dirty" not in gap] == []  # this checkout may be dirty
    assert 0 < payload["summary"]["eval_heldout_map_mono"] <= 1 and payload["summary"]["eval_zeroshot_map_mono"] is None
    table = pd.read_parquet(tmp_path / "out" / "per_setting.parquet")
    assert table.groupby("setting").size().to_dict() == {"cross": 2, "mono": 2, "multi": 2}
    multi = tmp_path / "beir" / "xquad-r-heldout" / "multi"
    n_queries = len((multi / "queries.jsonl").read_text().splitlines())
    n_docs = len((multi / "corpus.jsonl").read_text().splitlines())
    assert len((multi / "runs" / "bench.trec").read_text().splitlines()) == n_docs * n_queries  # the whole pool

    code, out, _ = run_cli(["--lexical", "eval.enabled=false", "--beir", str(multi)], capsys)  # read back as BEIR
    assert code == 0 and "ndcg10" in out and "multi" in out


def test_the_evaluation_sets_default_to_a_runs(capsys):
    """bench.evaluate and a run read the same eval config: by default, the data's held-out articles only."""
    code, out, _ = run_cli(["--lexical", "eval.languages=[en]"], capsys)
    assert code == 0 and "xquad-r-heldout" in out and "mlqa-r" not in out


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval.batch_size=0", "eval.batch_size must be a positive integer, got 0"),
        ("eval.query_chunk=true", "eval.query_chunk must be a positive integer"),
        ("eval.max_length=2", "eval.max_length must be null or an integer >= 4"),
        ("eval.sets=[xquad]", "eval.sets: unknown 'xquad'"),
        ("eval.sets=mlqa-r", "eval.sets must be a list"),
        ("eval.sets=[heldout,heldout]", "must not repeat"),
        ("eval.languages=[]", "eval.languages must be null or a non-empty list"),
        ("+eval.batchsize=8", "unknown key(s) eval.batchsize"),
        ("eval.enabled=yes", "eval.enabled must be true or false"),
    ],
)
def test_eval_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        plan_runs("config", [override], sweep=False)
