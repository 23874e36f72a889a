"""Tests for bench.results.devices: which GPU size a predicted configuration fits, up to which L."""

from __future__ import annotations

import pandas as pd

from bench.results.devices import GiB, device_fit, fit_text, largest_fitting, predicted_rows

LEVELS = [2, 8, 32, 104]


def _predicted(gib_at: dict[int, float], strategy: str = "hybrid", device: str = "cuda") -> pd.DataFrame:
    return pd.DataFrame([{"model": "xlmr-base", "batch_size": 100, "strategy": strategy, "device_type": device,
                          "mixed_precision": "bf16", "source": "predicted", "n_languages": level, "seed": 0,
                          "peak_tensor_bytes": (gib - 2) * GiB, "predicted_margin_bytes": 2 * GiB}
                         for level, gib in gib_at.items()])  # fmt: skip


def test_the_largest_fitting_language_count_counts_the_margin():
    rows = _predicted({2: 10.0, 8: 15.0, 32: 23.0, 104: 41.0})
    fit = device_fit(rows).iloc[0]
    assert (fit.fits_16gib, fit.fits_24gib, fit.fits_40gib, fit.fits_80gib) == (8, 32, 32, 104)
    assert fit.total_gib_max == 41.0 and (fit.n_languages_min, fit.n_languages_max) == (2, 104)
    assert fit_text(fit.fits_80gib, 104) == "all (to L=104)" and fit_text(fit.fits_16gib, 104) == "to L=8"


def test_nothing_fits_when_the_smallest_count_does_not_and_a_gap_stops_the_run():
    assert largest_fitting(pd.Series(LEVELS), pd.Series([20.0, 10.0, 10.0, 10.0]) * GiB, 16 * GiB) is None
    assert fit_text(None, 104) == "none"
    assert largest_fitting(pd.Series(LEVELS), pd.Series([10.0, 20.0, 10.0, 10.0]) * GiB, 16 * GiB) == 2


def test_cpu_predictions_and_measured_rows_have_no_gpu_to_fit():
    rows = pd.concat([_predicted({2: 10.0}, device="cpu"), _predicted({2: 10.0}).assign(source="measured")])
    assert predicted_rows(rows).empty and device_fit(rows).empty
    assert len(device_fit(pd.concat([rows, _predicted({2: 10.0, 8: 12.0}, strategy="mbert")]))) == 1
