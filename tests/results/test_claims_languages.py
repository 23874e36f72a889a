"""Claims along L: `at` (one test per L), `scope` (trained or untrained languages only), trends over L, and the
runs of an arm at several L; on synthetic per-query tables whose every value is planted, so each estimate is exact.

A run's per-query value is planted per cell, plus a question-cluster offset shared by every run (it cancels in every
difference and slope) and a seed offset that sums to 0 over seeds 0-2 (it cancels in every mean over seeds).
"""

from __future__ import annotations

import copy
import json
import math

import pandas as pd
import pytest
import yaml

from bench import PROJECT_ROOT
from bench.errors import ConfigError
from bench.results.arms import ArmRuns
from bench.results.claims import evaluate_claims, load_arms, load_claims, parse_claims
from bench.results.verdict_table import verdict_markdown

LANGS = ("en", "de", "ru", "es")  # the evaluated languages; a run at L trains on the first L
LEVELS = (2, 4)
SEEDS = (0, 1, 2)
SEED_OFFSET = {0: -0.002, 1: 0.0, 2: 0.002}
SETS = {"xquad-r-heldout": "XQuAD-R held-out", "mlqa-r": "MLQA-R"}
ARMS = {"crosslingual": {"strategy": "crosslingual"}, "hybrid-0.5": {"strategy": "hybrid", "alpha": 0.5},
        "monolingual": {"strategy": "monolingual"}}  # fmt: skip
BASE = {"mono": 0.80, "cross": 0.60, "multi": 0.50}


def cells() -> list[tuple[str, str, str]]:
    return ([("mono", x, x) for x in LANGS] + [("cross", x, y) for x in LANGS for y in LANGS if x != y]
            + [("multi", x, "*") for x in LANGS])  # fmt: skip


def run_frame(value, n_languages: int, seed: int, clusters: int = 8) -> pd.DataFrame:
    """One run on both sets: ap = BASE[setting] + value(setting, query_lang, pool_lang, trained, L) + offsets."""
    trained = frozenset(LANGS[:n_languages])
    rows = [{"set": name, "setting": s, "query_lang": q, "pool_lang": p, "query_id": f"q{c}",
             "ap": BASE[s] + value(s, q, p, trained, n_languages) + 0.01 * c + SEED_OFFSET[seed],
             "rank_distance": 10.0 if s == "multi" else math.nan}
            for name in SETS for s, q, p in cells() for c in range(clusters)]  # fmt: skip
    return pd.DataFrame(rows)


def nothing(*_) -> float:
    return 0.0


def arm(value=nothing, levels=LEVELS, seeds=SEEDS) -> ArmRuns:
    """An arm's runs at every L of `levels` and every seed, as load_arms gives them (seed, then L)."""
    runs = [(s, run_frame(value, n, s), n, frozenset(LANGS[:n])) for s in seeds for n in levels]
    return ArmRuns(*(tuple(column) for column in zip(*runs)))


def claims_dict(*claims: dict, levels=LEVELS) -> dict:
    """A claims file's content, the shape of conf/claims/languages.yaml, with few replicates."""
    return {"experiment": "languages-test", "results_dir": "unused", "languages": list(levels), "arms": ARMS,
            "sets": SETS, "significance": 0.05, "equivalence_margin": 0.005,
            "bootstrap": {"replicates": 300, "seed": 0}, "claims": list(claims)}  # fmt: skip


def diff(claim: str, a: str, b: str, metric: str, expect: str = "greater", **extra) -> dict:
    return {"id": claim, "kind": "difference", "a": a, "b": b, "metric": metric, "expect": expect, **extra}


def by_id(frame: pd.DataFrame, claim: str, set_name: str = "xquad-r-heldout") -> pd.Series:
    (row,) = frame[(frame["id"] == claim) & (frame["set"] == set_name)].itertuples(index=False)
    return pd.Series(row._asdict())


def test_at_every_makes_one_test_per_level_named_for_it():
    claims = parse_claims(claims_dict(diff("H1", "hybrid-0.5", "crosslingual", "map_mono", at="every"),
                                      diff("U1", "crosslingual", "monolingual", "map_multi", at=[2],
                                           scope="untrained")))  # fmt: skip
    assert [(c.id, c.base_id, c.at_languages, c.scope) for c in claims.claims] == [
        ("H1@L2", "H1", 2, "all"), ("H1@L4", "H1", 4, "all"), ("U1@L2", "U1", 2, "untrained")]
    assert claims.languages == LEVELS


def test_a_difference_is_judged_on_the_runs_of_its_level_only():
    """Hybrid keeps +0.05 monolingual mAP at L = 4 and nothing at L = 2: pooling the levels would give +0.025."""
    claims = parse_claims(claims_dict(diff("H1", "hybrid-0.5", "crosslingual", "map_mono", at="every")))
    plant = lambda s, q, p, trained, n: 0.05 if (s == "mono" and n == 4) else 0.0  # noqa: E731
    frame = evaluate_claims(claims, {"hybrid-0.5": arm(plant), "crosslingual": arm()})
    at2, at4 = by_id(frame, "H1@L2"), by_id(frame, "H1@L4")
    assert at4.estimate == pytest.approx(0.05, abs=1e-12) and at4.verdict == "confirmed" and at4.n_seeds == "3/3"
    assert at2.estimate == pytest.approx(0.0, abs=1e-12) and at2.verdict == "unresolved"
    assert at4.n_languages == 4 and at4.base_id == "H1" and at4.scope == "all"


def test_a_scoped_claim_reads_only_the_cells_of_its_scope():
    """Cross-lingual beats monolingual by 0.04 on the untrained languages' multi cells and by 0.06 on the cross cells
    whose two languages were both trained (at L = 2: en->de and de->en, 2 of the 12 ordered pairs)."""
    scoped = [diff(f"{m}-{scope}", "crosslingual", "monolingual", m, at=[2], scope=scope)
              for m in ("map_multi", "map_cross") for scope in ("all", "trained", "untrained")]
    claims = parse_claims(claims_dict(*scoped))

    def plant(setting, query, pool, trained, n):
        if setting == "multi":
            return 0.04 * (query not in trained)
        return 0.06 * (setting == "cross" and query in trained and pool in trained)

    frame = evaluate_claims(claims, {"crosslingual": arm(plant), "monolingual": arm()})
    expected = {"map_multi-all": 0.02, "map_multi-trained": 0.0, "map_multi-untrained": 0.04,
                "map_cross-all": 0.06 * 2 / 12, "map_cross-trained": 0.06, "map_cross-untrained": 0.0}  # fmt: skip
    for claim, value in expected.items():
        assert by_id(frame, f"{claim}@L2").estimate == pytest.approx(value, abs=1e-12), claim


def test_untrained_languages_at_the_largest_level_are_not_run():
    claims = parse_claims(claims_dict(diff("U1", "crosslingual", "monolingual", "map_multi", at="every",
                                           scope="untrained")))  # fmt: skip
    frame = evaluate_claims(claims, {"crosslingual": arm(), "monolingual": arm()})
    assert by_id(frame, "U1@L4").verdict == "not run" and by_id(frame, "U1@L4").n_seeds == "0/0"
    assert by_id(frame, "U1@L2").verdict == "unresolved"


def test_a_trend_over_levels_is_the_slope_against_l():
    """map_multi = 0.5 + 0.01 L for cross-lingual: slope 0.01 per language. Monolingual mAP grows by 0.002 L for
    cross-lingual and 0.005 L for hybrid: hybrid's advantage has slope 0.003, with a degenerate interval because
    the difference is paired by seed at every L (the seed offsets a seed's runs share cancel)."""
    levels = (2, 4, 8)
    claims = parse_claims(claims_dict(
        {"id": "T1", "kind": "trend", "along": "languages", "arm": "crosslingual", "metric": "map_multi",
         "expect": "greater"},
        {"id": "E1", "kind": "trend", "along": "languages", "a": "hybrid-0.5", "b": "crosslingual",
         "metric": "map_mono", "expect": "greater"},
        {"id": "T3", "kind": "trend", "along": "languages", "arm": "monolingual", "metric": "map_multi",
         "expect": "less"}, levels=levels))  # fmt: skip
    cross = arm(lambda s, q, p, t, n: 0.01 * n * (s == "multi") + 0.002 * n * (s == "mono"), levels)
    hybrid = arm(lambda s, q, p, t, n: 0.01 * n * (s == "multi") + 0.005 * n * (s == "mono"), levels)
    frame = evaluate_claims(claims, {"crosslingual": cross, "hybrid-0.5": hybrid, "monolingual": arm(levels=levels)})
    assert by_id(frame, "T1").estimate == pytest.approx(0.01, abs=1e-12) and by_id(frame, "T1").verdict == "confirmed"
    assert by_id(frame, "T1").n_seeds == "3/3/3"
    assert by_id(frame, "E1").estimate == pytest.approx(0.003, abs=1e-12) and by_id(frame, "E1").verdict == "confirmed"
    assert by_id(frame, "E1").n_seeds == "3/3/3/3/3/3" and by_id(frame, "E1").se == pytest.approx(0, abs=1e-12)
    assert by_id(frame, "T1").se > 1e-4  # one arm's groups are resampled on their own: the seed offsets show
    assert by_id(frame, "T3").estimate == pytest.approx(0.0, abs=1e-12) and by_id(frame, "T3").verdict == "unresolved"
    assert math.isnan(by_id(frame, "T1").n_languages)


def test_a_trend_missing_a_level_is_not_run():
    claims = parse_claims(claims_dict({"id": "T1", "kind": "trend", "along": "languages", "arm": "crosslingual",
                                       "metric": "map_multi", "expect": "greater"}))  # fmt: skip
    frame = evaluate_claims(claims, {"crosslingual": arm(levels=(2,))})
    assert by_id(frame, "T1").verdict == "not run" and by_id(frame, "T1").n_seeds == "3/0"


def test_the_verdict_table_names_the_level_the_scope_and_the_axis():
    claims = parse_claims(claims_dict(
        diff("H1", "hybrid-0.5", "crosslingual", "map_mono", at="every", text="hybrid keeps mono"),
        diff("U1", "crosslingual", "monolingual", "map_multi", at=[2], scope="untrained"),
        {"id": "E1", "kind": "trend", "along": "languages", "a": "hybrid-0.5", "b": "crosslingual",
         "metric": "map_mono", "expect": "greater", "exploratory": True}))  # fmt: skip
    table = verdict_markdown(evaluate_claims(claims, {}), claims)
    assert "| **H1@L2** hybrid keeps mono | map_mono | hybrid-0.5 − crosslingual > 0 at L = 2 |" in table
    assert "| **H1@L4** | map_mono | hybrid-0.5 − crosslingual > 0 at L = 4 |" in table  # the text once per claim
    assert "| map_multi, untrained languages | crosslingual − monolingual > 0 at L = 2 |" in table
    assert "| **E1** (exploratory) | map_mono | slope over L of hybrid-0.5 − crosslingual > 0 |" in table


def write_results_dir(root, arms: dict[str, ArmRuns]) -> None:
    """A results directory as the harness leaves it: rows with n_languages and languages, per_query/<run_id>.parquet."""
    (root / "per_query").mkdir(parents=True)
    rows = []
    for label, runs in arms.items():
        selector = ARMS[label]
        for seed, frame, n, trained in zip(runs.seeds, runs.frames, runs.n_languages, runs.trained):
            run_id = f"{label}-L{n}-s{seed}"
            rows.append({"run_id": run_id, "status": "ok", "strategy": selector["strategy"],
                         "alpha": selector.get("alpha"), "seed": seed, "n_languages": n,
                         "languages": ",".join(code for code in LANGS if code in trained),
                         "strategy_params": json.dumps({"alpha": selector.get("alpha")})})  # fmt: skip
            frame.assign(run_id=run_id).to_parquet(root / "per_query" / f"{run_id}.parquet")
    pd.DataFrame(rows).to_parquet(root / "results.parquet")


def test_an_arm_holds_one_run_per_seed_and_level_with_its_training_languages(tmp_path):
    write_results_dir(tmp_path, {"crosslingual": arm(), "monolingual": arm()})
    claims = parse_claims(claims_dict(diff("H", "crosslingual", "monolingual", "map_multi", at="every")))
    loaded = load_arms(claims, tmp_path)["crosslingual"]
    assert sorted(zip(loaded.seeds, loaded.n_languages)) == [(s, n) for s in SEEDS for n in LEVELS]
    at2 = loaded.at(2)
    assert at2.seeds == SEEDS and set(at2.trained) == {frozenset({"en", "de"})}
    assert loaded.at(None) is loaded
    raw = claims_dict(diff("H", "crosslingual", "monolingual", "map_multi"))
    without_axis = parse_claims({key: value for key, value in raw.items() if key != "languages"})
    with pytest.raises(ConfigError, match="arms.crosslingual: selects runs with a missing or repeated seed"):
        load_arms(without_axis, tmp_path)  # without an axis of L, seed 0 at L = 2 and 4 would be paired at random


def test_two_runs_of_one_seed_and_level_are_refused(tmp_path):
    write_results_dir(tmp_path, {"crosslingual": arm(levels=(2,))})
    results = pd.read_parquet(tmp_path / "results.parquet")
    extra = results.iloc[[0]].assign(run_id="again")
    pd.concat([results, extra]).to_parquet(tmp_path / "results.parquet")
    claims = parse_claims(claims_dict(diff("H", "crosslingual", "monolingual", "map_multi", at="every")))
    with pytest.raises(ConfigError, match="repeated seed and L"):
        load_arms(claims, tmp_path)


def test_runs_recorded_without_levels_keep_working():
    """ArmRuns built from seeds and frames alone (as the alpha-frontier's tests do): every run kept for no L."""
    runs = ArmRuns((0, 1), (run_frame(nothing, 2, 0), run_frame(nothing, 2, 1)))
    assert runs.n_languages == (None, None) and runs.trained == (None, None)
    assert runs.at(None) is runs and runs.scoped("all") is runs
    assert runs.on_set("mlqa-r").n_languages == (None, None)


BAD = [
    ("languages", [4, 2], "languages: must be a list of increasing"),
    ("languages", [2, True], "languages: must be a list of increasing"),
    ("claims.0.at", 3, "claims[H1].at: must be every, one L"),
    ("claims.0.at", [2, 2], "claims[H1].at"),
    ("claims.0.at", None, "claims[H1].at"),
    ("claims.0.scope", "seen", "claims[H1].scope: unknown scope"),
    ("claims.0.along", "languages", "claims[H1].along: applies to kind trend only"),
    ("claims.1.at", 2, "claims[T1].at: a trend over L spans every L"),
    ("claims.1.a", "hybrid-0.5", "claims[T1].arm: a trend over L follows one arm"),
    ("claims.1.arm", "nobody", "claims[T1].arm: unknown arm"),
]


@pytest.mark.parametrize("key, value, message", BAD)
def test_a_bad_claim_along_languages_is_one_line_naming_the_key(tmp_path, key, value, message):
    raw = copy.deepcopy(claims_dict(
        diff("H1", "hybrid-0.5", "crosslingual", "map_mono", at="every"),
        {"id": "T1", "kind": "trend", "along": "languages", "arm": "crosslingual", "metric": "map_multi",
         "expect": "greater"}))  # fmt: skip
    *parents, last = key.split(".")
    target = raw
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is None:
        del target[last]
    else:
        target[last] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as caught:
        load_claims(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_at_and_along_languages_need_the_files_levels():
    raw = claims_dict(diff("H1", "hybrid-0.5", "crosslingual", "map_mono", at="every"))
    del raw["languages"]
    with pytest.raises(ConfigError, match=r"claims\[H1\].at: needs the claims file's `languages`"):
        parse_claims(raw)
    raw["claims"] = [{"id": "T1", "kind": "trend", "along": "languages", "arm": "crosslingual", "metric": "map_multi",
                      "expect": "greater"}]  # fmt: skip
    with pytest.raises(ConfigError, match=r"claims\[T1\].along: needs the claims file's `languages`"):
        parse_claims(raw)


def test_the_committed_languages_claims_file_is_valid_and_holds_every_pre_registered_family():
    claims = load_claims(PROJECT_ROOT / "conf" / "claims" / "languages.yaml")
    ids = {c.base_id for c in claims.claims}
    assert claims.languages == (2, 4, 8, 11) and len(claims.claims) * len(claims.sets) == 48
    assert {"H1", "H2", "U1", "U2", "U3", "U4", "T1", "T2", "T3", "E1"} == ids
    exploratory = {c.base_id for c in claims.claims if c.exploratory}
    assert exploratory == {"U3", "U4", "E1"}
    assert all(c.at_languages != 11 for c in claims.claims if c.scope == "untrained")  # nothing is untrained at 11
