"""Tests for bench.plot: figures are written for full, failed-run, single-seed, single-L and predicted sets, and the
cost figures speak the answer's language (linear axes, the fitted line, the cost per added language).

`write_synthetic_results` is also used by test_report.py and test_notebook.py (imported from
this module, since the tests directory has no shared conftest for it yet).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import PROJECT_ROOT
from bench.plot import main
from bench.results.figures import COST_FIGURES, PLOTS_DIR, display_unit, figure_plan, plot_results, strategy_styles
from bench.results.fit import failed_runs, usable_runs
from bench.results.growth import GROWTH_FILE, growth_fits
from bench.results.numbers import per_language_text
from bench.results.store import RESULTS_FILE, write_table_atomic
from bench.results.schema import RunRecord, records_to_table

STRATEGIES = {  # strategy: (exponent of per-example time in L, exponent of activation memory in L, mAP at L=2)
    "monolingual": (0.05, 0.0, 0.42),
    "crosslingual": (0.25, 0.6, 0.47),
    "hybrid": (0.15, 0.3, 0.50),
    "mbert": (0.0, 0.0, 0.38),
}
GIB, MIB = 2**30, 2**20


def _train_record(strategy: str, n_lang: int, seed: int, rng: np.random.Generator, datasets) -> RunRecord:
    k_time, k_act, map2 = STRATEGIES[strategy]
    steps, batch = 50 * n_lang, 32
    noise = float(np.exp(rng.normal(0, 0.03)))
    train_s = steps * batch * 0.004 * (n_lang / 2) ** k_time * noise
    params = 110_000_000 * 4
    activations = int(300 * MIB * (n_lang / 2) ** k_act)
    record = RunRecord(
        run_id=f"{strategy}-L{n_lang}-s{seed}", config_hash=f"h{n_lang}{seed}", strategy=strategy,
        n_languages=n_lang, seed=seed, steps=steps, batch_size=batch, budget="per_language", mode="train",
        model="bert-base-multilingual-cased", model_params=110_000_000, max_length=128,
        wall_s=train_s + 20 + 3 * n_lang, train_s=train_s, step_time_p50_s=train_s / steps,
        samples_per_s=steps * batch / train_s, tokens_per_s=steps * batch * 128 / train_s, peak_param_bytes=params,
        peak_grad_bytes=params, peak_optimizer_bytes=2 * params, peak_activation_bytes=activations,
        peak_tensor_bytes=4 * params + activations, peak_rss_bytes=int((4 * params + activations) * 1.1 + GIB),
        device_type="cpu", device_name="cpu", cpu_model="Synthetic CPU @ 2GHz", threads=2,
        torch_version="2.5.1", python_version="3.11.2", git_commit="abc1234", git_dirty=False,
    )  # fmt: skip
    for dataset in datasets:
        quality = map2 + 0.04 * math.log(n_lang / 2) + rng.normal(0, 0.005)
        record.update(**{f"eval_{dataset}_map_multi": quality, f"eval_{dataset}_rank_distance": 4.0 - 6 * quality})
    return record


def _predicted_record(strategy: str, n_lang: int) -> RunRecord:
    _, k_act, _ = STRATEGIES[strategy]
    params, activations = 110_000_000 * 4, int(300 * MIB * (n_lang / 2) ** k_act)
    return RunRecord(
        run_id=f"pred-{strategy}-L{n_lang}", config_hash=f"p{n_lang}", status="predicted", predicted=True,
        mode="predict", strategy=strategy, n_languages=n_lang, seed=0, peak_param_bytes=params,
        peak_grad_bytes=params, peak_optimizer_bytes=2 * params, peak_activation_bytes=activations,
        peak_tensor_bytes=4 * params + activations,
    )  # fmt: skip


def synthetic_records(
    seeds=(0, 1), languages=(2, 4, 8, 11), failed: bool = True, predicted: bool = False,
    datasets=("heldout", "zeroshot"), measured: bool = True,
) -> list[RunRecord]:  # fmt: skip
    """4 strategies x languages x seeds of plausible, seeded synthetic runs, plus optional failed/predicted rows."""
    rng = np.random.default_rng(1234)
    records = []
    if measured:
        for strategy in STRATEGIES:
            for n_lang in languages:
                records += [_train_record(strategy, n_lang, seed, rng, datasets) for seed in seeds]
    if failed:
        records.append(RunRecord(
            run_id="crosslingual-L11-s2", config_hash="hfail", status="oom", strategy="crosslingual",
            n_languages=11, seed=2, error_type="OutOfMemoryError", error_message="CPU out of memory at step 3",
        ))  # fmt: skip
        records.append(RunRecord(  # interrupted before its configuration was known: no L at all
            run_id="interrupted-early", config_hash="hint", status="interrupted", error_type="KeyboardInterrupt",
        ))  # fmt: skip
    if predicted:
        records += [_predicted_record(s, n) for s in STRATEGIES for n in languages]
    return records


def write_synthetic_results(results_dir: Path, **kwargs) -> Path:
    """Write `synthetic_records(**kwargs)` to results_dir/results.parquet; return results_dir."""
    write_table_atomic(records_to_table(synthetic_records(**kwargs)), Path(results_dir) / RESULTS_FILE)
    return Path(results_dir)


def _stems(paths: list[Path]) -> set[str]:
    for path in paths:
        assert path.is_file() and path.stat().st_size > 1000, path
    assert {p.suffix for p in paths} == {".png", ".svg"}
    return {p.stem for p in paths}


COST_STEMS = {
    "wall_time", "train_time_per_example", "peak_tensor_memory", "memory_breakdown", "peak_rss", "throughput",
}  # fmt: skip
QUALITY_STEMS = {"quality_heldout", "cost_quality_heldout", "quality_zeroshot", "cost_quality_zeroshot"}


def test_full_set_with_failed_run_draws_every_figure(tmp_path):
    paths = plot_results(write_synthetic_results(tmp_path))
    assert _stems(paths) == COST_STEMS | QUALITY_STEMS
    assert all(p.parent == tmp_path / PLOTS_DIR for p in paths)
    fits = pd.read_parquet(tmp_path / GROWTH_FILE)
    assert set(fits["strategy"]) == set(STRATEGIES)
    assert "crosslingual-L11-s2" not in fits.to_string()  # the failed run is not a curve point


def test_single_seed_and_one_dataset(tmp_path):
    paths = plot_results(write_synthetic_results(tmp_path, seeds=(0,), datasets=("heldout",), failed=False))
    assert _stems(paths) == COST_STEMS | {"quality_heldout", "cost_quality_heldout"}


def test_single_language_count_plots_without_fit(tmp_path):
    paths = plot_results(write_synthetic_results(tmp_path, languages=(4,), datasets=()))
    assert _stems(paths) == COST_STEMS
    assert pd.read_parquet(tmp_path / GROWTH_FILE)["slope"].isna().all()


def test_predicted_mode_plots_memory_only(tmp_path):
    paths = plot_results(write_synthetic_results(tmp_path, measured=False, predicted=True, failed=False))
    assert _stems(paths) == {"peak_tensor_memory", "memory_breakdown"}
    fits = pd.read_parquet(tmp_path / GROWTH_FILE)
    assert set(fits["source"]) == {"predicted"} and fits["slope"].notna().all()


def test_only_failed_runs_writes_no_figures(tmp_path):
    write_table_atomic(records_to_table(synthetic_records(seeds=(), failed=True)), tmp_path / RESULTS_FILE)
    assert plot_results(tmp_path) == []
    assert (tmp_path / GROWTH_FILE).is_file()


def _cost_figures(**kwargs) -> tuple[pd.DataFrame, dict]:
    """The growth fits of a synthetic table and its cost figures, built as plot_results builds them, by file stem."""
    table = records_to_table(synthetic_records(**kwargs)).to_pandas()
    runs, failed = usable_runs(table), failed_runs(table)
    growth = growth_fits(runs)
    costs = {spec.name for spec in COST_FIGURES}
    return growth, {stem: build() for stem, _, build in figure_plan(runs, failed, growth) if stem in costs}


@pytest.mark.parametrize("seeds", [(0, 1, 2), (0,)])
def test_cost_figures_are_linear_with_the_fitted_line_and_the_cost_per_added_language(seeds):
    """The answer's framing, cost = intercept + slope · L: no log-log axes, no power-law exponent, and each strategy's
    legend entry the report's slope per added language with how its interval was made."""
    growth, figures = _cost_figures(seeds=seeds, datasets=())
    assert set(figures) == COST_STEMS - {"memory_breakdown"}
    for stem, fig in figures.items():
        footnote = " ".join(text.get_text() for text in fig.texts)
        assert "k:" not in footnote and "L^k" not in footnote and "Dotted lines: cost = intercept + slope · L" in footnote
        for ax in (ax for ax in fig.axes if ax.get_visible()):
            assert (ax.get_xscale(), ax.get_yscale()) == ("linear", "linear"), stem
            labels = [text.get_text() for text in ax.get_legend().get_texts()]
            assert labels and not any("k=" in label for label in labels), (stem, labels)
            dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
            assert len(dotted) == len(STRATEGIES), stem  # one fitted line per strategy
    memory = {fit.strategy: fit for fit in growth[growth["metric"] == "peak_tensor_bytes"].itertuples(index=False)}
    labels = [text.get_text() for text in figures["peak_tensor_memory"].axes[0].get_legend().get_texts()]
    assert labels == [f"{s}   {per_language_text(memory[s], 'bytes')}" for s in STRATEGIES]
    interval = "one seed: no interval" if len(seeds) == 1 else f"t over {len(seeds)} seeds"
    assert all(label.endswith(f"({interval})") for label in labels if "exact" not in label), labels


def test_strategy_styles_are_stable_and_distinct():
    styles = strategy_styles(["zeta", "hybrid", "mbert"])
    assert styles["hybrid"] == strategy_styles(["hybrid"])["hybrid"]
    assert len({c for c, _ in styles.values()}) == 3


@pytest.mark.parametrize(("kind", "value", "unit"), [("bytes", 3 * GIB, "GiB"), ("bytes", 5 * MIB, "MiB"),
                                                     ("seconds", 0.004, "ms"), ("seconds", 12.0, "s")])  # fmt: skip
def test_display_unit(kind, value, unit):
    assert display_unit(kind, value)[1] == unit


def test_main_missing_directory_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "nope")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_cli_subprocess_missing_directory(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.plot", str(tmp_path / "nope")], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "results.parquet" in proc.stderr
