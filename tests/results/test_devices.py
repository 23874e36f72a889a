"""Tests for bench.results.devices: which real card holds a predicted configuration, up to which L, read with the
prediction's error band; and the card table in conf/devices.yaml."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.errors import ConfigError
from bench.results.devices import (
    CARDS, GiB, Card, card_cell, card_lines, device_fit, device_rows, load_cards, predicted_rows, reach, verdict,
)  # fmt: skip

SIXTEEN = Card("sixteen", 16 * 1024, 16 * 1024, "test: 16 GiB usable")
FORTY = Card("forty", 41 * 1024, 40 * 1024, "test: 40 GiB usable")


def _predicted(gib_at: dict[int, float], strategy: str = "hybrid", device: str = "cuda", **columns) -> pd.DataFrame:
    return pd.DataFrame([{"model": "xlmr-base", "batch_size": 100, "strategy": strategy, "device_type": device,
                          "mixed_precision": "bf16", "source": "predicted", "n_languages": level, "seed": 0,
                          "peak_tensor_bytes": (gib - 2) * GiB, "predicted_margin_bytes": 2 * GiB, **columns}
                         for level, gib in gib_at.items()])  # fmt: skip


def test_a_verdict_reads_the_total_with_its_error_band():
    usable = 16 * GiB
    assert verdict(15.2 * GiB, usable, 0.05) == "fits"  # 15.96 GiB at +5%
    assert verdict(15.3 * GiB, usable, 0.05) == "marginal"  # 16.07 at +5%, 14.54 at -5%: the band crosses 16
    assert verdict(16.8 * GiB, usable, 0.05) == "marginal"  # 15.96 at -5%
    assert verdict(16.9 * GiB, usable, 0.05) == "does not fit"  # 16.06 even at -5%
    assert verdict(15.3 * GiB, usable, 0.0) == "fits"  # a CPU prediction's band is a point


def test_reach_along_l_stops_at_the_first_count_that_does_not_hold():
    totals = pd.Series({2: 10.0, 8: 15.5, 32: 16.5, 104: 41.0}) * GiB
    bounded = reach(totals, 16 * GiB, 0.05)
    assert (bounded.fits_to, bounded.marginal_to) == (2, 32)  # 8: 16.3 at +5%; 32: 15.7 at -5%; 104: beyond
    assert bounded.text() == "fits to L=2, marginal to L=32"
    assert reach(totals, 50 * GiB, 0.05).text() == "fits all (to L=104)"
    assert reach(totals, 38 * GiB, 0.05).text() == "fits to L=32"  # 41 GiB: 38.95 even at -5%
    assert reach(pd.Series({2: 16.5, 8: 30.0}) * GiB, 16 * GiB, 0.05).text() == "marginal to L=2"
    assert reach(pd.Series({2: 16.5, 8: 16.6}) * GiB, 16 * GiB, 0.05).text() == "marginal to L=8 (all)"
    assert reach(pd.Series({2: 20.0, 8: 10.0}) * GiB, 16 * GiB, 0.05).text() == "does not fit"  # no gap is bridged
    gap = reach(pd.Series({2: 10.0, 8: 16.5, 32: 10.0}) * GiB, 16 * GiB, 0.05)
    assert (gap.fits_to, gap.marginal_to) == (2, 32)  # a marginal count in between ends what fits


def test_device_fit_takes_each_rows_recorded_error_and_the_old_rows_claim():
    legacy = device_fit(_predicted({2: 15.5}), (SIXTEEN,)).iloc[0]  # no predicted_error: written before it was recorded
    assert legacy.error == 0.05 and legacy.reach["sixteen"].text() == "marginal to L=2 (all)"
    exact = device_fit(_predicted({2: 15.5}, predicted_error=0.0), (SIXTEEN,)).iloc[0]
    assert exact.reach["sixteen"].text() == "fits all (to L=2)"
    wide = device_fit(_predicted({2: 14.9}, predicted_error=0.10), (SIXTEEN,)).iloc[0]  # 16.39 at +10%
    assert wide.error == 0.10 and wide.reach["sixteen"].text() == "marginal to L=2 (all)"


def test_the_worst_case_gets_its_own_verdict_and_old_rows_a_dash():
    worst = {"worst_peak_tensor_bytes": 30 * GiB, "worst_margin_bytes": 3 * GiB, "predicted_error": 0.05}
    fit = device_fit(_predicted({2: 10.0, 8: 12.0}, **worst), (SIXTEEN, FORTY)).iloc[0]
    assert fit.worst_gib_max == 33.0
    assert card_cell(fit, SIXTEEN) == "fits all (to L=8); worst: does not fit"
    assert card_cell(fit, FORTY) == "fits all (to L=8); worst: fits all (to L=8)"  # 34.65 <= 40
    old = device_fit(_predicted({2: 10.0, 8: 12.0}), (SIXTEEN,))
    assert old.iloc[0].worst_reach["sixteen"] is None and card_cell(old.iloc[0], SIXTEEN) == "fits all (to L=8)"
    header, rows = device_rows(old, (SIXTEEN,))
    assert header[-1] == "sixteen (16.00 GiB)" and rows[0][6:9] == ["–", "±5%", "fits all (to L=8)"]


def test_the_largest_l_counts_the_margin_and_the_median_over_seeds():
    rows = pd.concat([_predicted({2: 10.0, 8: 15.0, 32: 23.0, 104: 41.0}), _predicted({8: 17.0}).assign(seed=1),
                      _predicted({8: 13.0}).assign(seed=2)])  # fmt: skip
    fit = device_fit(rows, (SIXTEEN, FORTY)).iloc[0]
    assert fit.reach["sixteen"].text() == "fits to L=8"  # L=8: the median seed, 15 GiB (15.75 at +5%)
    assert fit.reach["forty"].text() == "fits to L=32, marginal to L=104 (all)"  # 41 GiB: 38.95 at -5%
    assert fit.total_gib_max == 41.0 and (fit.n_languages_min, fit.n_languages_max) == (2, 104)


def test_cpu_predictions_and_measured_rows_have_no_gpu_to_fit():
    rows = pd.concat([_predicted({2: 10.0}, device="cpu"), _predicted({2: 10.0}).assign(source="measured")])
    assert predicted_rows(rows).empty and device_fit(rows).empty
    assert len(device_fit(pd.concat([rows, _predicted({2: 10.0, 8: 12.0}, strategy="mbert")]))) == 1


def test_the_committed_cards_are_real_ones_with_what_a_process_can_use():
    names = [card.name for card in CARDS]
    assert names[:2] == ["T4", "V100 16GB"] and "H100 80GB" in names and "A100 40GB" in names
    usable = {card.name: card.usable_mib / 1024 for card in CARDS}
    assert 14.7 <= usable["T4"] < usable["V100 16GB"] <= 15.8  # the issue: real 16 GB cards expose 14.7-15.8 GiB
    assert all(card.usable_mib <= card.memory_total_mib and card.source for card in CARDS)
    assert [gib for gib, _ in card_lines((SIXTEEN, FORTY, Card("also", 16 * 1024, 16 * 1024, "x")))] == [16.0, 40.0]


@pytest.mark.parametrize(("text", "message"), [
    ("cards: []", "non-empty list"),
    ("cards: [{name: T4, memory_total_mib: 15360, usable_mib: 15400, source: x}]", "usable <= total"),
    ("cards: [{name: T4, memory_total_mib: 15360, usable_mib: 15102}]", "exactly name"),
    ("cards: [{name: T4, memory_total_mib: 15360, usable_mib: 15102, source: x}]\nheadline: [L4]", "unknown ['L4']"),
    ("cards: [", "cannot read"),
])  # fmt: skip
def test_a_bad_card_table_is_a_one_line_error(tmp_path, text, message):
    path = tmp_path / "devices.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        load_cards(path)
    assert "\n" not in str(info.value)
