"""Claims: validation, Holm, verdicts on planted effects, partial experiments and the verdict entry point.

Arms are synthetic runs (tests/test_bootstrap.synthetic_run) on the same questions of two sets.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from bench.errors import BenchError, ConfigError
from bench.results.arms import ArmRuns, select_runs
from bench.results.claims import evaluate, evaluate_claims, holm, load_arms, load_claims, parse_claims
from bench.results.verdict_table import verdict_markdown
from bench.verdict import main as verdict_main
from tests.results.test_bootstrap import synthetic_run

SETS = {"xquad-r-heldout": "XQuAD-R held-out", "mlqa-r": "MLQA-R"}
ARMS = {
    "crosslingual": {"strategy": "crosslingual"},
    "hybrid-0.25": {"strategy": "hybrid", "alpha": 0.25},
    "hybrid-0.5": {"strategy": "hybrid", "alpha": 0.5},
    "hybrid-0.75": {"strategy": "hybrid", "alpha": 0.75},
    "monolingual": {"strategy": "monolingual"},
    "mixed-mono": {"strategy": "mixed-mono"},
}
ALPHA = {"crosslingual": 0.0, "hybrid-0.25": 0.25, "hybrid-0.5": 0.5, "hybrid-0.75": 0.75, "monolingual": 1.0}


def claims_dict(*claims: dict, arms: dict = ARMS, margin: float = 0.005) -> dict:
    """A claims file's content, the shape of conf/claims/alpha-frontier.yaml, with few replicates."""
    alpha_of_arm = {label: alpha for label, alpha in ALPHA.items() if label in arms}
    return {"experiment": "test", "results_dir": "unused", "arms": arms, "alpha_of_arm": alpha_of_arm, "sets": SETS,
            "significance": 0.05, "equivalence_margin": margin, "bootstrap": {"replicates": 400, "seed": 0},
            "claims": list(claims)}  # fmt: skip


def diff(claim: str, a: str, b: str, metric: str, expect: str, **extra) -> dict:
    """A difference claim a - b."""
    return {"id": claim, "kind": "difference", "a": a, "b": b, "metric": metric, "expect": expect, **extra}


def make_arms(shifts: dict[str, float], seeds: int = 4, clusters: int = 60, column: str = "ap") -> dict[str, ArmRuns]:
    """Arms by label with `shifts[label]` added to every query's ap (or rank_distance), on shared questions."""
    rng = np.random.default_rng(0)
    base = {name: rng.uniform(0.3, 0.6, clusters) for name in SETS}
    arms = {}
    for label, shift in shifts.items():
        frames = []
        for seed in range(seeds):
            effect = rng.normal(0, 0.005)
            frame = pd.concat([synthetic_run(rng, base[name], run_effect=effect, set_name=name) for name in SETS],
                              ignore_index=True)  # fmt: skip
            frame[column] += shift
            frames.append(frame)
        arms[label] = ArmRuns(tuple(range(seeds)), tuple(frames))
    return arms


def by_id(frame: pd.DataFrame, claim: str, set_name: str = "xquad-r-heldout") -> pd.Series:
    return frame[(frame["id"] == claim) & (frame["set"] == set_name)].iloc[0]


def test_holm_adjusts_as_defined():
    # sorted 0.005 0.01 0.03 0.04 -> x4 x3 x2 x1 = 0.02 0.03 0.06 0.04 -> running max 0.02 0.03 0.06 0.06
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03, 0.005])), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm(np.array([0.5, 0.6])), [1.0, 1.0])  # capped at 1
    got = holm(np.array([0.01, np.nan, 0.04]))  # a test not run counts in m (= 3) as p = 1
    np.testing.assert_allclose(got[[0, 2]], [0.03, 0.08])
    assert np.isnan(got[1])


def test_planted_shift_confirms_greater_and_refutes_less():
    claims = parse_claims(claims_dict(
        diff("G", "hybrid-0.5", "crosslingual", "map_mono", "greater"),
        diff("L", "hybrid-0.5", "crosslingual", "map_mono", "less"),
    ))  # fmt: skip
    frame = evaluate_claims(claims, make_arms({"hybrid-0.5": 0.05, "crosslingual": 0.0}))
    assert len(frame) == 4 and (frame["p_holm"] >= frame["p_raw"]).all()
    for set_name in SETS:
        greater, less = by_id(frame, "G", set_name), by_id(frame, "L", set_name)
        assert greater.verdict == "confirmed" and less.verdict == "refuted"
        assert greater.ci_low > 0 and greater.estimate == pytest.approx(0.05, abs=0.01)
        assert greater.n_seeds == "4/4"
    assert by_id(frame, "G")["sign_agrees_with_primary"] is None
    assert by_id(frame, "G", "mlqa-r")["sign_agrees_with_primary"] is True


def test_no_difference_is_unresolved():
    claims = parse_claims(claims_dict(
        diff("G", "hybrid-0.5", "crosslingual", "map_multi", "greater"),
    ))  # fmt: skip
    frame = evaluate_claims(claims, make_arms({"hybrid-0.5": 0.0, "crosslingual": 0.0}))
    assert (frame["verdict"] == "unresolved").all() and (frame["min_detectable"] > 0).all()


def test_equivalence_confirmed_for_identical_arms_and_refuted_three_margins_away():
    margin = 0.02
    claims = parse_claims(claims_dict(
        diff("same", "hybrid-0.5", "crosslingual", "map_multi", "equivalent"),
        diff("shifted", "monolingual", "crosslingual", "map_multi", "equivalent"),
        margin=margin,
    ))  # fmt: skip
    arms = make_arms({"hybrid-0.5": 0.0, "crosslingual": 0.0, "monolingual": 3 * margin}, clusters=300)
    frame = evaluate_claims(claims, arms)
    assert (frame[frame["id"] == "same"]["verdict"] == "confirmed").all()
    assert (frame[frame["id"] == "shifted"]["verdict"] == "refuted").all()


def test_a_planted_trend_in_alpha_is_confirmed_with_its_sign():
    claims = parse_claims(claims_dict(
        {"id": "up", "kind": "trend", "metric": "map_mono", "expect": "greater"},
        {"id": "down", "kind": "trend", "metric": "map_mono", "expect": "less"},
    ))  # fmt: skip
    shifts = {label: 0.1 * alpha for label, alpha in ALPHA.items()} | {"mixed-mono": -0.5}  # not on the alpha axis
    frame = evaluate_claims(claims, make_arms(shifts))
    up, down = by_id(frame, "up"), by_id(frame, "down")
    assert up.verdict == "confirmed" and down.verdict == "refuted"
    assert up.estimate == pytest.approx(0.1, abs=0.01) and up.n_seeds == "4/4/4/4/4"


def test_extreme_is_confirmed_only_when_the_arm_beats_every_other_arm():
    arms = {label: ARMS[label] for label in ("crosslingual", "hybrid-0.5", "monolingual", "mixed-mono")}
    claim = {"id": "H5", "kind": "extreme", "arm": "mixed-mono", "metric": "rank_distance", "expect": "greater"}
    claims = parse_claims(claims_dict(claim, arms=arms))
    beats_all = {"crosslingual": 0.0, "hybrid-0.5": 5.0, "monolingual": 10.0, "mixed-mono": 30.0}
    frame = evaluate_claims(claims, make_arms(beats_all, column="rank_distance"))
    assert by_id(frame, "H5").verdict == "confirmed"
    assert by_id(frame, "H5").estimate == pytest.approx(20.0, abs=2.0)  # the margin over the closest rival
    tied = beats_all | {"monolingual": 30.0}
    assert by_id(evaluate_claims(claims, make_arms(tied, column="rank_distance")), "H5").verdict == "unresolved"
    beaten = beats_all | {"monolingual": 50.0}
    assert by_id(evaluate_claims(claims, make_arms(beaten, column="rank_distance")), "H5").verdict == "refuted"


def write_results_dir(root, arms: dict[str, ArmRuns], selectors: dict = ARMS):
    """A results directory the way the harness leaves it: results.parquet and per_query/<run_id>.parquet."""
    rows = []
    (root / "per_query").mkdir(parents=True)
    for label, runs in arms.items():
        selector = selectors[label]
        for seed, frame in zip(runs.seeds, runs.frames):
            run_id = f"{label}-{seed}"
            rows.append({"run_id": run_id, "status": "ok", "strategy": selector["strategy"],
                         "alpha": selector.get("alpha"), "seed": seed,
                         "strategy_params": json.dumps({"alpha": selector.get("alpha")})})  # fmt: skip
            frame.assign(run_id=run_id).to_parquet(root / "per_query" / f"{run_id}.parquet")
    rows.append({"run_id": "monolingual-0", "status": "failed", "strategy": "monolingual", "alpha": None, "seed": 0,
                 "strategy_params": "{}"})  # fmt: skip
    pd.DataFrame(rows).to_parquet(root / "results.parquet")


PARTIAL_CLAIMS = (
    diff("H1", "hybrid-0.5", "crosslingual", "map_mono", "greater", text="hybrid keeps mono", paper="0.798 vs 0.755"),
    diff("H2", "hybrid-0.5", "monolingual", "map_multi", "equivalent"),
    {"id": "H5", "kind": "extreme", "arm": "mixed-mono", "metric": "rank_distance", "expect": "greater", "exploratory": True},
    {"id": "H6", "kind": "trend", "metric": "map_mono", "expect": "greater"},
)  # fmt: skip


def test_a_partial_experiment_gives_not_run_for_claims_without_runs(tmp_path):
    arms = make_arms({"hybrid-0.5": 0.05, "crosslingual": 0.0})
    cross = arms["crosslingual"]
    arms["crosslingual"] = ArmRuns(cross.seeds, tuple(frame[frame["set"] != "mlqa-r"] for frame in cross.frames))
    write_results_dir(tmp_path, arms)
    (tmp_path / "per_query" / "hybrid-0.5-3.parquet").unlink()  # an ok run whose per-query file is missing
    claims = parse_claims(claims_dict(*PARTIAL_CLAIMS))
    with pytest.warns(UserWarning, match="hybrid-0.5-3"):
        frame = evaluate(claims, tmp_path)
    assert by_id(frame, "H1").verdict == "confirmed" and by_id(frame, "H1").n_seeds == "3/3"  # paired on shared seeds
    assert by_id(frame, "H1", "mlqa-r").verdict == "not run"  # crosslingual was not evaluated on it
    assert set(frame[frame["id"] != "H1"]["verdict"]) == {"not run"}
    table = verdict_markdown(frame, claims)
    assert "(exploratory)" in table and "0.798 vs 0.755" in table and "MLQA-R: verdict" in table


def test_arm_selectors_match_columns_and_strategy_parameters():
    results = pd.DataFrame({"run_id": list("abcd"), "status": ["ok", "ok", "ok", "failed"],
                            "strategy": ["hybrid", "hybrid", "monolingual", "hybrid"],
                            "alpha": [0.5, 0.25000000001, None, 0.5], "seed": [0, 0, 0, 1],
                            "strategy_params": ['{"schedule": "linear"}', "{}", None, "{}"]})  # fmt: skip
    assert list(select_runs(results, {"strategy": "hybrid", "alpha": 0.25}).run_id) == ["b"]
    assert list(select_runs(results, {"strategy": "hybrid", "alpha": 0.5}).run_id) == ["a"]  # d failed
    assert list(select_runs(results, {"schedule": "linear"}).run_id) == ["a"]
    assert list(select_runs(results, {"alpha": None}).run_id) == ["c"]


def test_the_verdict_entry_point_writes_the_table_and_the_figure(tmp_path, capsys):
    write_results_dir(tmp_path, make_arms({"hybrid-0.5": 0.05, "crosslingual": 0.0, "mixed-mono": -0.1}))
    (tmp_path / "references.json").write_text(json.dumps({"xquad-r-heldout": {
        "role": "heldout", "lexical": {"map_mono": 0.79, "map_multi": 0.09},
        "zero-shot me5-small": {"map_mono": 0.84, "map_multi": 0.38}}}))  # fmt: skip
    path = tmp_path / "alpha-frontier.yaml"
    path.write_text(yaml.safe_dump(claims_dict(*PARTIAL_CLAIMS), sort_keys=False))
    assert verdict_main([str(path), "--results-dir", str(tmp_path)]) == 0
    text = (tmp_path / "verdict.md").read_text()
    for expected in ("Primary set: XQuAD-R held-out", "400 replicates", "Holm", "Min detectable", "| H1 |"):
        assert expected in text
    assert len(pd.read_parquet(tmp_path / "verdict.parquet")) == 2 * len(PARTIAL_CLAIMS)
    for suffix in ("png", "svg"):
        assert (tmp_path / "plots" / f"alpha_frontier.{suffix}").stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out


def bad(key: str, value) -> dict:
    """The partial claims with one key replaced (dotted path; claims.N.key for a claim)."""
    raw = copy.deepcopy(claims_dict(*PARTIAL_CLAIMS))
    *parents, last = key.split(".")
    target = raw
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = value
    return raw


@pytest.mark.parametrize("key, value, named", [
    ("claims.0.a", "hybrid-05", "claims[H1].a"),
    ("claims.0.id", None, "claims[0].id"),
    ("claims.0.exploratory", "yes", "claims[H1].exploratory"),
    ("claims.0.metric", "map", "claims[H1].metric"),
    ("claims.0.kind", "ratio", "claims[H1].kind"),
    ("claims.0.expect", "bigger", "claims[H1].expect"),
    ("claims.2.arm", "nobody", "claims[H5].arm"),
    ("claims.2.expect", "equivalent", "claims[H5].expect"),
    ("alpha_of_arm.hybrid-9", 0.9, "alpha_of_arm.hybrid-9"),
    ("significance", 1.5, "significance"),
    ("bootstrap.replicates", 10, "bootstrap.replicates"),
    ("claim", [], "claim: unknown key"),
])  # fmt: skip
def test_a_bad_claims_file_is_one_line_naming_the_key(tmp_path, key, value, named):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad(key, value)))
    with pytest.raises(ConfigError) as caught:
        load_claims(path)
    message = str(caught.value)
    assert "\n" not in message and named in message and str(path) in message


def test_missing_results_and_missing_files_are_one_line_errors(tmp_path, capsys):
    claims = parse_claims(claims_dict(*PARTIAL_CLAIMS))
    with pytest.raises(ConfigError, match="results_dir"):
        load_arms(claims, tmp_path / "nowhere")
    with pytest.raises(BenchError, match="results.parquet"):
        load_arms(claims, tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_claims(tmp_path / "absent.yaml")
    with pytest.raises(SystemExit) as caught:
        verdict_main([str(tmp_path / "absent.yaml")])
    assert caught.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def test_an_arm_with_one_seed_is_shown_but_never_judged():
    """One seed cannot show seed-to-seed variance: a planted shift is estimated, but the verdict waits for a second seed
    (it said 'confirmed' on one seed of a partial experiment before)."""
    from bench.results.claims import TOO_FEW

    claims = parse_claims(claims_dict(diff("G", "hybrid-0.5", "crosslingual", "map_mono", "greater")))
    arms = make_arms({"hybrid-0.5": 0.05, "crosslingual": 0.0})
    arms["hybrid-0.5"] = ArmRuns(arms["hybrid-0.5"].seeds[:1], arms["hybrid-0.5"].frames[:1])
    row = by_id(evaluate_claims(claims, arms), "G")
    assert row.verdict == TOO_FEW and row.estimate > 0.03 and np.isnan(row.p_holm)
    arms["hybrid-0.5"] = ArmRuns(make_arms({"hybrid-0.5": 0.05}).get("hybrid-0.5").seeds[:2],
                                 make_arms({"hybrid-0.5": 0.05}).get("hybrid-0.5").frames[:2])  # fmt: skip
    assert by_id(evaluate_claims(claims, arms), "G").verdict == "confirmed"
