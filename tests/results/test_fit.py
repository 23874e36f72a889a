"""Tests for bench.results.fit: which rows count, what they imply, their seed summaries, Student's t."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.results.fit import (
    MEASURED, PREDICTED, add_derived_metrics, failed_runs, seed_summary, t_quantile_975, usable_runs,
)  # fmt: skip

LEVELS = np.array([2, 4, 8, 11])


def _noisy(k: float, prefactor: float, seeds: int, sigma: float, rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Costs prefactor · L^k with multiplicative noise: plausible rows, nothing here fits them."""
    rng = np.random.default_rng(rng_seed)
    n_lang = np.repeat(LEVELS, seeds)
    return n_lang, prefactor * n_lang**k * np.exp(rng.normal(0.0, sigma, n_lang.size))


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

