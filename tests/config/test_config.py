"""Bad input fails at the edge with one line naming the key; good input becomes a typed RunConfig."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from bench import PROJECT_ROOT
from bench.config import RunConfig, compose_config
from bench.config.compose import expand_sweep, plan_runs, shuffled
from bench.errors import ConfigError
from bench.strategies import default_strategy_names, strategy_names


def test_default_config_validates():
    (run,) = plan_runs("config", [], sweep=False)
    assert run.config.languages == ("en", "de", "ru", "es")
    assert run.config.strategy.name == "hybrid" and run.config.strategy.alpha == 0.5
    assert run.config.steps == run.config.train.steps_per_language * 4


def test_explicit_language_list_and_count():
    (run,) = plan_runs("config", ["languages=[en,th,zh]"], sweep=False)
    assert run.config.languages == ("en", "th", "zh")
    (run,) = plan_runs("config", ["languages=11"], sweep=False)
    assert len(run.config.languages) == 11


def test_fixed_budget_does_not_grow_with_languages():
    (small,) = plan_runs("config", ["languages=2", "train.budget=fixed", "train.steps=7"], sweep=False)
    (large,) = plan_runs("config", ["languages=8", "train.budget=fixed", "train.steps=7"], sweep=False)
    assert small.config.steps == large.config.steps == 7


def test_sweep_expands_the_default_strategies_times_language_counts():
    runs = expand_sweep("config", ["languages=2,4,8,11"])
    assert default_strategy_names() == ("monolingual", "crosslingual", "hybrid", "mbert")  # mixed-mono is opt-in
    assert len(runs) == 4 * len(default_strategy_names())
    assert {r[0] for r in runs} == {f"strategy={s}" for s in default_strategy_names()}
    every = expand_sweep("config", ["strategy=glob(*)", "languages=2"])
    assert {r[0] for r in every} == {f"strategy={s}" for s in strategy_names()}  # glob(*) names the opt-in arms too


def test_the_memory_check_grid_holds_every_registered_strategy():
    runs = expand_sweep("check", [])
    assert {o for r in runs for o in r if o.startswith("strategy=")} == {f"strategy={s}" for s in strategy_names()}
    assert len(runs) == 2 * len(strategy_names())


def test_command_line_strategy_replaces_the_default_axis():
    assert len(expand_sweep("config", ["strategy=hybrid", "languages=2,4"])) == 2
    assert expand_sweep("config", ["strategy=glob(*lingual)", "seed=range(0,2)"]) == [
        ["strategy=monolingual", "seed=0"], ["strategy=monolingual", "seed=1"],
        ["strategy=crosslingual", "seed=0"], ["strategy=crosslingual", "seed=1"]]  # fmt: skip


def test_config_axes_come_from_the_config_and_yield_to_the_command_line():
    languages = lambda runs: {o for r in runs for o in r if o.startswith("languages=")}  # noqa: E731
    assert languages(expand_sweep("check", [])) == {"languages=2", "languages=4"}
    narrowed = expand_sweep("check", ["languages=3", "strategy=hybrid"])
    assert narrowed == [["strategy=hybrid", "languages=3"]] or narrowed == [["languages=3", "strategy=hybrid"]]


def test_a_run_config_survives_the_trip_to_its_child_process():
    for overrides in (["strategy=hybrid", "strategy.alpha=0.25"], ["strategy=mbert", "eval=full", "languages=[en,th]"]):
        (planned,) = plan_runs("config", overrides, sweep=False)
        cfg = planned.config
        again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg and again.config_hash() == cfg.config_hash() and again.run_id == cfg.run_id


def test_sweep_order_is_seeded_random_and_covers_every_run():
    planned = plan_runs("config", ["languages=2,4"], sweep=True)
    first, again, other = shuffled(planned, 0), shuffled(planned, 0), shuffled(planned, 1)
    assert first == again and first != other and sorted(map(id, first)) == sorted(map(id, planned))
    strategies = [p.config.strategy.name for p in first]
    assert strategies[: len(default_strategy_names())] != list(default_strategy_names())  # not strategy by strategy


def test_config_hash_ignores_results_dir_but_not_seed():
    (a,) = plan_runs("config", ["results.dir=/tmp/a"], sweep=False)
    (b,) = plan_runs("config", ["results.dir=/tmp/b"], sweep=False)
    (c,) = plan_runs("config", ["seed=1"], sweep=False)
    assert a.config.config_hash() == b.config.config_hash() != c.config.config_hash()


def test_the_worst_case_bound_travels_with_a_run_but_is_not_its_identity():
    (a,) = plan_runs("config", [], sweep=False)
    (b,) = plan_runs("config", ["predict.mask_delta=0.001"], sweep=False)
    assert a.config.predict.mask_delta == 1e-9 and b.config.predict.mask_delta == 0.001
    assert a.config.config_hash() == b.config.config_hash()  # committed rows keep their run ids
    assert RunConfig.from_dict(json.loads(json.dumps(b.config.to_dict()))).predict.mask_delta == 0.001  # to its child


def test_predict_104_plans_real_models_and_their_counterfactuals_on_the_same_tokens():
    runs = [p.config for p in plan_runs("config", ["+experiment=predict-104"], sweep=True)]
    assert len(runs) == 4 * len(strategy_names()) * 7 == 140
    assert {len(c.languages) for c in runs} == {2, 4, 8, 16, 32, 64, 104}
    assert all(c.mode == "predict" and c.device == "cuda" and c.train.batch_size == 100 and c.train.max_length == 128
               and c.train.mixed_precision == "bf16" and c.steps == 20 for c in runs)  # fmt: skip
    tables = {(c.model.name, c.model.vocab_size, c.tokenizer.policy, c.tokenizer.per_language_vocab) for c in runs}
    scaled = "selected-scaled"
    assert tables == {("xlmr-base", 250002, scaled, 2403), ("xlmr-body-vocab-grows", None, scaled, 2403),
                      ("mbert-base", 119547, scaled, 1149), ("mbert-body-vocab-grows", None, scaled, 1149)}
    for real, rows in (("xlmr-base", 250002), ("mbert-base", 119547)):  # R = floor(rows / 104): ids stay inside
        assert 2403 * 104 <= 250002 < 2404 * 104 and 1149 * 104 <= 119547 < 1150 * 104
        body = next(c.model for c in runs if c.model.name == real)
        grows = next(c.model for c in runs if c.model.name == real.replace("-base", "-body-vocab-grows"))
        assert grows == replace(body, name=grows.name, vocab_size=None) and body.vocab_size == rows


BAD_INPUTS = [
    (["languages=0"], "languages=0 is impossible"),
    (["languages=12"], "languages=12 is impossible"),
    (["languages=-3"], "impossible"),
    (["languages=2.5"], "languages must be"),
    (["languages=abc"], "unknown code"),
    (["languages=[en,xx]"], "unknown code"),
    (["languages=[en,en]"], "distinct"),
    (["strategy=nonsense"], "strategy"),
    (["model=nonsense"], "model"),
    (["strategy.alpha=1.5"], "strategy.alpha must be in [0, 1]"),
    (["strategy=monolingual", "+strategy.alpha=0.5"], "strategy: unknown key(s) strategy.alpha"),
    (["model=me5-small", "tokenizer=shared-all"], "needs the model's own tokenizer"),
    (["tokenizer=pretrained"], "tokenizer=pretrained reads the tokenizer of model.pretrained"),
    (["eval.sets=[heldout,squad]"], "eval.sets: unknown 'squad'"),
    (["data=synthetic"], "data=synthetic has no evaluation set"),
    (["strategy.alpha=-0.1"], "strategy.alpha must be in [0, 1]"),
    (["train.batch_size=1"], "train.batch_size must be at least 2"),
    (["train.steps_per_language=0"], "train.steps_per_language must be a positive integer"),
    (["train.max_length=-5"], "train.max_length"),
    (["strategy=crosslingual", "languages=1"], "needs at least 2 languages"),
    (["device=tpu"], "device must be one of"),
    (["train.budget=forever"], "train.budget"),
    (["seed=-1"], "seed must be"),
    (["train.nonsense=3"], "train.nonsense"),
    (["predict.mask_delta=0"], "predict.mask_delta must be a probability in (0, 1)"),
    (["predict.mask_delta=1.5"], "predict.mask_delta must be a probability in (0, 1)"),
    (["finetune_check.max_lr=0"], "finetune_check.max_lr must be a positive number"),
    (["finetune_check.train_preset=nonsense"], "finetune_check.train_preset='nonsense' is not in conf/train/"),
]


@pytest.mark.parametrize("overrides, message", BAD_INPUTS)
def test_bad_input_is_a_config_error_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as info:
        plan_runs("config", overrides, sweep=False)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_single_run_refuses_sweep_values():
    with pytest.raises(ConfigError, match="bench.sweep"):
        plan_runs("config", ["languages=2,4"], sweep=False)


@pytest.mark.parametrize("entry", ["bench.run", "bench.sweep"])
@pytest.mark.parametrize("override", ["languages=0", "strategy=nonsense", "strategy.alpha=2"])
def test_cli_prints_one_line_and_exits_2(entry, override, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", entry, override, f"results.dir={tmp_path}"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not any(tmp_path.iterdir()), "nothing may be written for invalid input"


def test_the_scaling_experiment_crosses_every_strategy_with_both_vocabulary_policies():
    """conf/experiment/scaling.yaml: 5 strategies x 4 L x 5 seeds x {fixed, growing vocabulary}, 60 steps at every L."""
    planned = plan_runs("config", ["+experiment=scaling"], sweep=True)
    configs = [p.config for p in planned]
    assert len(configs) == len(strategy_names()) * 4 * 5 * 2
    assert {c.tokenizer.policy for c in configs} == {"shared-all", "selected-scaled"}
    assert {c.steps for c in configs} == {60} and not any(c.eval.enabled for c in configs)
    assert {len(c.languages) for c in configs} == {2, 4, 8, 11} and {c.seed for c in configs} == {0, 1, 2, 3, 4}
    assert {c.results.dir for c in configs} == {"results/scaling"}
    assert committed_run_ids("scaling") <= {c.run_id for c in configs}  # the tiny model's committed rows keep their ids


def committed_run_ids(experiment: str) -> set[str]:
    """The run_ids of an experiment's committed rows (each run's config is saved under its run_id)."""
    ids = {path.stem for path in (PROJECT_ROOT / "results" / experiment / "configs").glob("*.json")}
    assert ids, f"results/{experiment}/configs/ holds no committed configs"
    return ids


def finetune_preset():
    return compose_config("config", ["train=finetune"]).train


def test_a_pretrained_preset_alone_fine_tunes():
    """Issue #28: `model=me5-small` with no other override trains at the fine-tuning preset's rate, warm-up and
    length, not the tiny model's from-scratch rate; so does `model=pretrained`. The tiny default keeps train=default."""
    preset = finetune_preset()
    for overrides in (["model=me5-small"], ["model=pretrained", "model.pretrained=builtin:me5-small"]):
        (run,) = plan_runs("config", overrides, sweep=False)
        train = run.config.train
        assert (train.lr, train.lr_schedule, train.lr_warmup_steps, train.max_length) == (
            preset.lr, preset.lr_schedule, preset.lr_warmup_steps, preset.max_length), overrides
        assert train.lr <= compose_config("config", []).finetune_check.max_lr
    (tiny,) = plan_runs("config", [], sweep=False)
    assert tiny.config.train == plan_runs("config", ["train=default"], sweep=False)[0].config.train
    assert tiny.config.train.lr > preset.lr


def test_the_command_line_and_experiments_win_over_the_presets_fine_tuning():
    (explicit,) = plan_runs("config", ["model=me5-small", "train.lr=3e-5"], sweep=False)
    assert explicit.config.train.lr == 3e-5 and explicit.config.train.lr_schedule == finetune_preset().lr_schedule
    (scratch,) = plan_runs("config", ["model=me5-small", "train=default"], sweep=False)
    (tiny,) = plan_runs("config", [], sweep=False)
    assert scratch.config.train == tiny.config.train
    (quality,) = plan_runs("config", ["+experiment=quality", "strategy=hybrid", "languages=2", "seed=0"], sweep=False)
    assert (quality.config.train.lr_schedule, quality.config.train.lr_warmup_steps) == ("linear", 2)  # its own


@pytest.mark.parametrize("experiment", ["alpha-frontier", "quality"])
def test_pretrained_experiments_keep_the_run_ids_of_their_committed_rows(experiment):
    """Both set every fine-tuning key themselves, so the preset changes none of their configs: results are keyed
    by run_id, and a moved id would orphan every committed row."""
    planned = plan_runs("config", [f"+experiment={experiment}"], sweep=True)
    assert {p.config.run_id for p in planned} == committed_run_ids(experiment)


def test_a_from_scratch_rate_on_pretrained_weights_warns_once_per_run(capsys):
    (run,) = plan_runs("config", ["model=me5-small", "train.lr=5e-4"], sweep=False)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {run.config.run_id}: train.lr=0.0005 "), lines
    assert "finetune_check.max_lr=0.0001" in lines[0]
    assert f"the fine-tuning default is train=finetune (train.lr={finetune_preset().lr:g})" in lines[0]
    RunConfig.from_dict(json.loads(json.dumps(run.config.to_dict())))  # what a launched child does: no second line
    plan_runs("config", ["model=me5-small", "train.lr=5e-4", "mode=predict"], sweep=False)  # trains nothing
    for quiet in (["model=me5-small"], [], ["model=me5-small", "train.lr=1e-4"]):  # preset, tiny, at the limit
        plan_runs("config", quiet, sweep=False)
    assert capsys.readouterr().err == ""
    planned = plan_runs("config", ["model=me5-small", "train.lr=5e-4", "strategy=hybrid", "seed=0,1"], sweep=True)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[1] for line in lines] == [p.config.run_id for p in planned] and len(lines) == 2
