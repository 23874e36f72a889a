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
        "t over 4 seeds", "affine", 16, 4, 4)


def _sweep_with_seed_effects(rng, planted: float, seeds: int):
    """One simulated sweep: each seed has its own batch plan, so its own intercept and slope around the planted
    ones (realistic: seed-to-seed spread of the slope about as large as the point noise allows), plus point noise."""
    seed = np.repeat(np.arange(seeds), LEVELS.size)
    n_lang = np.tile(LEVELS, seeds).astype(float)
    own_intercept = rng.normal(120.0, 3.0, seeds)[seed]
    own_slope = planted + rng.normal(0.0, 0.8, seeds)[seed]
    return n_lang, own_intercept + own_slope * n_lang + rng.normal(0.0, 2.0, n_lang.size), seed


@pytest.mark.parametrize("seeds", [3, 5])
def test_the_95_percent_interval_covers_a_planted_slope_95_percent_of_the_time(seeds):
    """1,000 simulated sweeps with a planted slope and seed-level noise: the stated 95% must be 93–97%. The
    min–max of the per-seed slopes (what a percentile bootstrap over 3 seeds gives) covers 75% at 3 seeds."""
    rng, planted, trials = np.random.default_rng(2026 + seeds), 1.77, 1000
    hits = 0
    for _ in range(trials):
        fit = fit_line(*_sweep_with_seed_effects(rng, planted, seeds))
        hits += fit.slope_ci_low <= planted <= fit.slope_ci_high
    assert 0.93 <= hits / trials <= 0.97, f"coverage {hits / trials:.3f} at {seeds} seeds"


def test_one_seed_gives_no_interval_and_no_call():
    n_lang, cost, seed = _affine_runs(2.0, 10.0, seeds=1, sigma=0.5, rng_seed=3)
    fit = fit_growth(n_lang, cost, seed)
    assert fit.interval == "one seed: no interval" and math.isnan(fit.slope_ci_low) and fit.shape == ""
    assert fit.slope == pytest.approx(2.0, rel=0.2)
    assert slope_text(fit.slope, fit.slope_ci_low, fit.slope_ci_high, fit.shape, "bytes").endswith("(one seed: no interval)")


def test_two_seeds_use_a_t_interval_with_one_degree_of_freedom():
    n_lang, cost, seed = _affine_runs(2.0, 10.0, seeds=2, sigma=0.5, rng_seed=3)
    fit = fit_line(n_lang, cost, seed)
    slopes = [np.polyfit(n_lang[seed == s], cost[seed == s], 1)[0] for s in (0, 1)]
    half = 12.706 * np.std(slopes, ddof=1) / math.sqrt(2)  # t(0.975, 1)
    assert fit.interval == "t over 2 seeds"
    assert (fit.slope_ci_low, fit.slope_ci_high) == pytest.approx((np.mean(slopes) - half, np.mean(slopes) + half), rel=1e-3)


def test_no_growth_is_called_flat_not_a_small_number():
    n_lang, cost, seed = _affine_runs(slope=0.0, intercept=0.12, seeds=3, sigma=0.01, rng_seed=5)
    fit = fit_growth(n_lang, cost, seed)
    assert fit.slope_ci_low < 0 < fit.slope_ci_high and fit.shape == "flat"
    constant = fit_growth(LEVELS, np.full(LEVELS.size, 10_042_368.0))  # parameters of a fixed vocabulary
    assert (constant.slope, constant.shape, constant.interval) == (0.0, "flat", "exact (no noise)")
    assert slope_text(constant.slope, constant.slope_ci_low, constant.slope_ci_high, constant.shape, "bytes") == "none (the same at every L)"


def test_a_deterministic_count_is_exact_even_from_one_seed():
    rows = 10 * MIB + 2.9 * MIB * LEVELS  # embedding rows and their AdamW state: no noise at all
    fit = fit_growth(LEVELS, rows, np.zeros(LEVELS.size))
    assert (fit.slope_ci_low, fit.slope_ci_high) == pytest.approx((2.9 * MIB, 2.9 * MIB)) and fit.shape == "affine"


def test_curvature_is_called_only_when_every_seed_bends_the_same_way():
    x = np.repeat(LEVELS, 3).astype(float)
    seeds = np.tile(np.arange(3), LEVELS.size)
    quadratic = fit_growth(x, 5.0 * x**2, seeds)
    assert quadratic.shape == "curved" and quadratic.k == pytest.approx(2.0) and quadratic.curvature == pytest.approx(5.0)
    line = fit_growth(x, 100.0 + 4.0 * x, seeds)
    assert line.shape == "affine" and line.slope == pytest.approx(4.0) and line.r2_affine == pytest.approx(1.0)
    rng = np.random.default_rng(7)  # a noisy line: the power law may fit a little better by chance; not "curved"
    noisy = fit_growth(x, 100.0 + 4.0 * x + rng.normal(0, 6.0, x.size), seeds)
    assert noisy.curvature_ci_low < 0 < noisy.curvature_ci_high and noisy.shape == "affine"


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
    fits = growth_fits(_runs(), ["peak_param_bytes", "not_a_column"])
    assert list(fits.columns) == GROWTH_COLUMNS and len(fits) == 4
    slopes = fits.set_index(["strategy", "tokenizer_policy"])["slope"]
    assert slopes[("hybrid", "selected-scaled")] == pytest.approx(4 * MIB)
    assert slopes[("mbert", "shared-all")] == 0.0
    assert set(fits["shape"]) == {"flat", "affine"}


def test_step_cost_recovers_seconds_per_token_and_the_fixed_cost():
    fits = step_cost_fits(_runs())
    tokens = fits[fits["driver"] == "tokens per step"]
    assert list(fits.columns) == STEP_COST_COLUMNS and len(tokens) == 4
    assert tokens["s_per_unit"].to_numpy() == pytest.approx(np.full(4, 2e-5))
    assert tokens["fixed_s"].to_numpy() == pytest.approx(np.full(4, 0.05))
    assert step_cost_fits(_runs().drop(columns="step_time_p50_s")).empty


def test_masked_lm_time_is_fitted_against_vocabulary_rows_times_masked_tokens():
    """mbert's step: a fixed part plus its output layer, rows x masked tokens (mask_prob x real tokens)."""
    runs = _runs()
    runs["strategy_params"] = np.where(runs["strategy"] == "mbert", '{"mask_prob": 0.15}', "{}")
    runs["padding_fraction"] = 0.5
    runs["embedding_rows"] = np.where(runs["tokenizer_policy"] == "shared-all", 16000, 2000 * runs["n_languages"])
    work = runs["embedding_rows"] * 0.15 * runs["tokens_per_s"] * runs["measured_s"] / runs["measured_steps"] * 0.5
    mbert = runs["strategy"] == "mbert"
    runs.loc[mbert, "step_time_p50_s"] = 0.08 + 3e-11 * work[mbert]
    fits = step_cost_fits(runs)
    driver = fits[fits["driver"] == "vocabulary rows × masked tokens per step"]
    assert set(driver["strategy"]) == {"mbert"}  # a contrastive row has no masking probability
    assert driver["s_per_unit"].to_numpy() == pytest.approx(np.full(2, 3e-11))
    assert driver["fixed_s"].to_numpy() == pytest.approx(np.full(2, 0.08))
