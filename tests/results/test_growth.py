"""Tests for bench.results.growth: per-language slopes recover a known slope, and the shape follows the data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.results.markdown import slope_text
from bench.results.growth import GROWTH_COLUMNS, STEP_COST_COLUMNS, fit_growth, fit_line, growth_fits, step_cost_fits

LEVELS = np.array([2, 4, 8, 11])
MIB = 2**20


def _affine_runs(slope: float, intercept: float, seeds: int, sigma: float, rng_seed: int, seed_shift: float = 0.0):
    """Runs of cost = intercept + slope·L + noise; `seed_shift` adds a per-seed offset (seed-level spread)."""
    rng = np.random.default_rng(rng_seed)
    seed = np.repeat(np.arange(seeds), LEVELS.size)
    n_lang = np.tile(LEVELS, seeds)
    shift = rng.normal(0.0, seed_shift, seeds)[seed] if seed_shift else 0.0
    return n_lang, intercept + slope * n_lang + shift + rng.normal(0.0, sigma, n_lang.size), seed


def test_recovers_a_known_bytes_per_language_within_its_interval():
    n_lang, cost, seed = _affine_runs(slope=3 * MIB, intercept=140 * MIB, seeds=4, sigma=0.5 * MIB, rng_seed=1)
    fit = fit_growth(n_lang, cost, seed)
    assert fit.slope == pytest.approx(3 * MIB, rel=0.1)
    assert fit.slope_ci_low < 3 * MIB < fit.slope_ci_high
    assert fit.intercept == pytest.approx(140 * MIB, rel=0.02)
    assert (fit.interval, fit.shape, fit.n_points, fit.n_seeds, fit.n_languages_distinct) == (
        "seed bootstrap", "affine", 16, 4, 4)


def test_seed_bootstrap_interval_covers_the_true_slope_at_about_the_nominal_rate():
    hits = 0
    for trial in range(200):
        n_lang, cost, seed = _affine_runs(2.0, 10.0, seeds=6, sigma=1.0, rng_seed=trial)
        fit = fit_line(n_lang, cost, seed, n_boot=400, rng_seed=trial)
        hits += fit.slope_ci_low < 2.0 < fit.slope_ci_high
    assert 0.85 <= hits / 200 <= 0.99  # a percentile bootstrap over 6 clusters runs a little narrow


def test_two_seeds_use_a_t_interval():
    n_lang, cost, seed = _affine_runs(2.0, 10.0, seeds=2, sigma=0.5, rng_seed=3)
    fit = fit_line(n_lang, cost, seed)
    assert fit.interval == "t" and fit.slope_ci_low < 2.0 < fit.slope_ci_high


def test_no_growth_is_called_flat_not_a_small_number():
    n_lang, cost, seed = _affine_runs(slope=0.0, intercept=0.12, seeds=3, sigma=0.01, rng_seed=5)
    fit = fit_growth(n_lang, cost, seed)
    assert fit.slope_ci_low < 0 < fit.slope_ci_high and fit.shape == "flat"
    constant = fit_growth(LEVELS, np.full(LEVELS.size, 10_042_368.0))  # parameters of a fixed vocabulary
    assert (constant.slope, constant.shape) == (0.0, "flat")
    assert slope_text(constant.slope, constant.slope_ci_low, constant.slope_ci_high, constant.shape, "bytes") == "none (the same at every L)"


def test_a_clear_power_law_is_named_and_a_line_is_not():
    x = np.repeat(LEVELS, 3).astype(float)
    seeds = np.tile(np.arange(3), LEVELS.size)
    quadratic = fit_growth(x, 5.0 * x**2, seeds)
    assert quadratic.shape == "power" and quadratic.k == pytest.approx(2.0)
    assert quadratic.r2_power > quadratic.r2_affine
    line = fit_growth(x, 100.0 + 4.0 * x, seeds)
    assert line.shape == "affine" and line.slope == pytest.approx(4.0) and line.r2_affine == pytest.approx(1.0)


def test_undetermined_fits_are_nan_not_a_crash():
    single = fit_growth([4, 4, 4], [1.0, 2.0, 3.0], [0, 1, 2])
    assert math.isnan(single.slope) and single.shape == ""
    two_points = fit_line([2, 8], [1.0, 4.0])
    assert two_points.slope == pytest.approx(0.5) and math.isnan(two_points.slope_ci_low)


def _runs() -> pd.DataFrame:
    rows = []
    for policy, per_language in (("shared-all", 0.0), ("selected-scaled", 4 * MIB)):
        for strategy in ("hybrid", "mbert"):
            for seed in range(3):
                for n in LEVELS:
                    tokens = 4000.0 + 100 * n + 10 * seed
                    rows.append({"strategy": strategy, "source": "measured", "tokenizer_policy": policy, "seed": seed,
                                 "n_languages": int(n), "peak_param_bytes": 10 * MIB + per_language * n,
                                 "step_time_p50_s": 0.05 + 2e-5 * tokens, "tokens_per_s": tokens / (0.05 + 2e-5 * tokens),
                                 "measured_s": 10 * (0.05 + 2e-5 * tokens), "measured_steps": 10})  # fmt: skip
    return pd.DataFrame(rows)


def test_growth_fits_one_row_per_strategy_policy_and_metric():
    fits = growth_fits(_runs(), ["peak_param_bytes", "not_a_column"], n_boot=200)
    assert list(fits.columns) == GROWTH_COLUMNS and len(fits) == 4
    slopes = fits.set_index(["strategy", "tokenizer_policy"])["slope"]
    assert slopes[("hybrid", "selected-scaled")] == pytest.approx(4 * MIB)
    assert slopes[("mbert", "shared-all")] == 0.0
    assert set(fits["shape"]) == {"flat", "affine"}


def test_step_cost_recovers_seconds_per_token_and_the_fixed_cost():
    fits = step_cost_fits(_runs(), n_boot=200)
    assert list(fits.columns) == STEP_COST_COLUMNS and len(fits) == 4
    assert fits["s_per_token"].to_numpy() == pytest.approx(np.full(4, 2e-5))
    assert fits["fixed_s"].to_numpy() == pytest.approx(np.full(4, 0.05))
    assert step_cost_fits(_runs().drop(columns="step_time_p50_s")).empty
