"""conf/experiment/languages.yaml: the plan it makes (arms x L x seeds at one budget, alpha-frontier's settings) and
that conf/claims/languages.yaml's arms select exactly its runs, one per seed and L."""

from __future__ import annotations

import dataclasses
import shlex
from collections import Counter

import pandas as pd
import pytest

from bench import PROJECT_ROOT
from bench.config.compose import compose_config, plan_runs
from bench.measure.hardware import native_bf16
from bench.results.arms import select_runs
from bench.results.claims import load_claims
from bench.stages import describe

LEVELS = (2, 4, 8, 11)
SEEDS = (0, 1, 2)
ORDER = ("en", "de", "ru", "es", "zh", "vi", "ar", "tr", "el", "hi", "th")  # conf/data/xquad-r.yaml
PRECISION_KEYS = {("train", "mixed_precision"), ("eval", "precision")}  # `auto` here, bf16 in alpha-frontier


@pytest.fixture(scope="module")
def planned():
    return [p.config for p in plan_runs("config", ["+experiment=languages"], sweep=True)]


def test_three_arms_at_four_levels_and_three_seeds(planned):
    assert len(planned) == 3 * len(LEVELS) * len(SEEDS)
    arms = Counter((c.strategy.name, c.strategy.params().get("alpha"), c.strategy.params().get("schedule"))
                   for c in planned)  # fmt: skip
    assert arms == {("monolingual", None, None): 12, ("crosslingual", None, None): 12, ("hybrid", 0.5, "exact"): 12}
    assert Counter((len(c.languages), c.seed) for c in planned) == {(n, s): 3 for n in LEVELS for s in SEEDS}
    assert {c.languages for c in planned} == {ORDER[:n] for n in LEVELS}  # the first L of the documented order


def test_every_level_trains_on_the_same_budget(planned):
    assert {(c.train.budget, c.steps, c.train.batch_size) for c in planned} == {("fixed", 100, 32)}


def test_the_runs_evaluate_both_sets_save_every_query_and_write_their_own_directory(planned):
    evaluation = {(c.eval.sets, c.eval.curve.every_steps, c.eval.curve.articles, c.results.per_query, c.results.dir)
                  for c in planned}  # fmt: skip
    assert evaluation == {(("heldout", "mlqa-r"), 25, 2, True, "results/languages")}
    assert not any(c.eval.only for c in planned) and not any(c.eval.languages for c in planned)  # all 11, every run


def test_auto_precision_is_bf16_only_where_the_cpu_runs_it_natively(planned):
    composed = compose_config("config", ["+experiment=languages"])
    assert (composed.train.mixed_precision, composed.eval.precision) == ("auto", "auto")  # resolved when planned
    wanted = ("bf16", "bf16") if native_bf16("cpu") else ("no", "fp32")
    assert {(c.train.mixed_precision, c.eval.precision) for c in planned} == {wanted}


def without_precision(config: dict) -> dict:
    config = {section: dict(values) if isinstance(values, dict) else values for section, values in config.items()}
    for section, key in PRECISION_KEYS:
        config[section].pop(key)
    config.pop("results")
    return config


def test_at_eight_languages_every_setting_is_alpha_frontiers_but_the_precision(planned):
    """The same fine-tuning as alpha-frontier (its runs are the evidence this experiment extends along L): its L = 8
    runs of seeds 0-2 in bf16 are this plan's L = 8 runs, key for key, except the precision (`auto` here)."""
    alpha_frontier = (p.config for p in plan_runs("config", ["+experiment=alpha-frontier"], sweep=True))
    frontier = {(c.strategy.name, c.seed): c for c in alpha_frontier if c.seed in SEEDS
                and c.train.mixed_precision == "bf16" and c.strategy.params().get("alpha") in (None, 0.5)}  # fmt: skip
    at_eight = [c for c in planned if len(c.languages) == 8]
    assert len(at_eight) == 9
    for config in at_eight:
        twin = frontier[(config.strategy.name, config.seed)]
        assert without_precision(config.to_dict()) == without_precision(twin.to_dict())


def test_the_claims_files_arms_select_each_run_of_the_plan_once(planned):
    claims = load_claims(PROJECT_ROOT / "conf" / "claims" / "languages.yaml")
    rows = pd.DataFrame([dataclasses.asdict(describe(c, None)) | {"status": "ok"} for c in planned])
    selected = {label: select_runs(rows, selector) for label, selector in claims.arms.items()}
    assert {label: len(runs) for label, runs in selected.items()} == {label: 12 for label in claims.arms}
    assert sorted(run for runs in selected.values() for run in runs["run_id"]) == sorted(rows["run_id"])
    for runs in selected.values():
        assert not runs.duplicated(["seed", "n_languages"]).any()
        assert set(runs["n_languages"]) == set(claims.languages) == set(LEVELS)
    assert str(claims.results_dir) == planned[0].results.dir


def test_the_headers_cut_evaluates_mlqa_r_at_two_levels_only():
    """The first cut the experiment's header names, run as written there: the same 36 runs, MLQA-R at L = 2 and 11."""
    header = (PROJECT_ROOT / "conf" / "experiment" / "languages.yaml").read_text()
    (line,) = [line for line in header.splitlines() if "python -m bench.sweep +experiment=languages '" in line]
    overrides = shlex.split(line.split("python -m bench.sweep", 1)[1])
    cut = [p.config for p in plan_runs("config", overrides, sweep=True)]
    assert len(cut) == 36
    assert {(c.eval.only["mlqa-r"].seeds, c.eval.only["mlqa-r"].n_languages) for c in cut} == {(SEEDS, (2, 11))}
