"""Tests for bench.results.fit: power-law fits recover known exponents and degrade to NaN, never to a crash."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.results.fit import (
    FIT_COLUMNS, MEASURED, PREDICTED, add_derived_metrics, failed_runs, fit_power_law, scaling_fits, seed_summary,
    t_quantile_975, usable_runs,
)  # fmt: skip

LEVELS = np.array([2, 4, 8, 11])


def _noisy(k: float, prefactor: float, seeds: int, sigma: float, rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(rng_seed)
    n_lang = np.repeat(LEVELS, seeds)
    return n_lang, prefactor * n_lang**k * np.exp(rng.normal(0.0, sigma, n_lang.size))


def test_recovers_known_exponent_within_its_interval():
    n_lang, cost = _noisy(1.5, 3.0, seeds=5, sigma=0.05, rng_seed=7)
    fit = fit_power_law(n_lang, cost)
    assert fit.k_ci_low < 1.5 < fit.k_ci_high
    assert fit.k_stderr < 0.05
    assert fit.prefactor == pytest.approx(3.0, rel=0.15)
    assert (fit.n_points, fit.n_languages_distinct) == (20, 4)


def test_interval_covers_true_exponent_about_95_percent_of_the_time():
    hits = sum(
        fit.k_ci_low < 1.5 < fit.k_ci_high
        for fit in (fit_power_law(*_noisy(1.5, 3.0, seeds=2, sigma=0.1, rng_seed=s)) for s in range(400))
    )
    assert 0.91 < hits / 400 < 0.99


@settings(max_examples=30, deadline=None)
@given(k=st.floats(-2, 3), prefactor=st.floats(1e-3, 1e9))
def test_exact_power_law_has_zero_stderr(k, prefactor):
    fit = fit_power_law(LEVELS, prefactor * LEVELS.astype(float) ** k)
    assert fit.k == pytest.approx(k, abs=1e-9)
    assert fit.k_stderr == pytest.approx(0.0, abs=1e-9)
    assert fit.prefactor == pytest.approx(prefactor, rel=1e-9)


def test_single_language_count_gives_nan_without_crashing():
    fit = fit_power_law([4, 4, 4], [1.0, 1.1, 0.9])
    assert math.isnan(fit.k) and math.isnan(fit.k_stderr) and math.isnan(fit.prefactor)
    assert (fit.n_points, fit.n_languages_distinct) == (3, 1)
    assert fit.label() == ""


def test_two_points_give_exact_k_but_no_stderr():
    fit = fit_power_law([2, 8], [1.0, 4.0])
    assert fit.k == pytest.approx(1.0)
    assert math.isnan(fit.k_stderr) and math.isnan(fit.k_ci_low)
    assert fit.label() == "k=1.00"


def test_missing_and_nonpositive_values_are_dropped():
    fit = fit_power_law([2, 4, None, 8, 16], [2.0, 4.0, 5.0, float("nan"), 0.0])
    assert (fit.n_points, fit.n_languages_distinct) == (2, 2)
    assert fit_power_law([], []).n_points == 0


def test_t_quantile_table_and_tail():
    assert t_quantile_975(0) != t_quantile_975(0)  # NaN
    assert t_quantile_975(1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile_975(60) == pytest.approx(2.0003, abs=1e-3)
    assert t_quantile_975(10_000) == pytest.approx(1.96, abs=1e-3)


def _frame() -> pd.DataFrame:
    n_lang, cost = _noisy(1.5, 3.0, seeds=2, sigma=0.02, rng_seed=1)
    rows = [{"strategy": s, "n_languages": n, "seed": i % 2, "status": "ok", "predicted": False, "train_s": c,
             "steps": 10, "batch_size": 4, "peak_tensor_bytes": None} for s in ("hybrid", "mbert")
            for i, (n, c) in enumerate(zip(n_lang, cost))]  # fmt: skip
    rows.append({"strategy": "hybrid", "n_languages": 16, "seed": 0, "status": "failed", "train_s": 1e9})
    rows += [{"strategy": "hybrid", "n_languages": n, "status": "predicted", "predicted": True,
              "peak_tensor_bytes": 100 * n} for n in (2, 4)]  # fmt: skip
    return pd.DataFrame(rows)


def test_scaling_fits_per_strategy_and_source_skipping_failed_and_null_metrics():
    fits = scaling_fits(_frame(), ["train_s", "train_s_per_example", "peak_tensor_bytes", "not_a_column"])
    assert list(fits.columns) == FIT_COLUMNS
    train = fits[fits.metric == "train_s"].set_index("strategy")
    assert set(train.index) == {"hybrid", "mbert"}
    assert (train["n_points"] == 8).all()  # the failed run at L=16 is not a point
    assert train.loc["hybrid", "k_ci_low"] < 1.5 < train.loc["hybrid", "k_ci_high"]
    per_example = fits[fits.metric == "train_s_per_example"].set_index("strategy")
    assert per_example.loc["hybrid", "k"] == pytest.approx(train.loc["hybrid", "k"])
    memory = fits[fits.metric == "peak_tensor_bytes"]
    assert memory[["strategy", "source"]].values.tolist() == [["hybrid", PREDICTED]]
    assert memory["k"].iloc[0] == pytest.approx(1.0)


def test_row_selection_and_summary():
    frame = _frame()
    runs = usable_runs(frame)
    assert set(runs["source"]) == {MEASURED, PREDICTED}
    assert failed_runs(frame)["status"].tolist() == ["failed"]
    summary = seed_summary(runs, "train_s")
    assert (summary["n"] == 2).all() and (summary["min"] <= summary["median"]).all()
    derived = add_derived_metrics(pd.DataFrame({"train_s": [8.0], "steps": [2], "batch_size": [0]}))
    assert derived["train_s_per_example"].isna().all()  # no division by zero


def test_per_step_phases_and_tokens_are_derived_from_the_measured_window():
    row = pd.DataFrame({"measured_steps": [4, 0], "measured_s": [2.0, 1.0], "tokens_per_s": [1000.0, 5.0],
                        "phase_forward_s": [0.8, 1.0], "phase_backward_s": [1.0, 1.0], "phase_optimizer_s": [0.2, 1.0]})  # fmt: skip
    derived = add_derived_metrics(row)
    assert derived.loc[0, ["forward_s_per_step", "backward_s_per_step", "optimizer_s_per_step"]].tolist() == [0.2, 0.25, 0.05]
    assert derived.loc[0, "tokens_per_step"] == 500.0  # 1000 tokens/s over 2 s in 4 steps
    assert derived.loc[1, ["forward_s_per_step", "tokens_per_step"]].isna().all()  # no measured steps: unknown, not inf


def test_empty_table_gives_empty_fits():
    empty = pd.DataFrame({"strategy": [], "n_languages": [], "status": [], "wall_s": []})
    assert scaling_fits(empty).empty
