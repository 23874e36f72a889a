"""Tests for bench.results.answer: the first screen's table and figure from a measured and a predicted sweep."""

from __future__ import annotations

import pandas as pd

from bench.results.answer import answer_figure, answer_table, quality_cells
from bench.results.devices import GiB, predicted_rows

MIB = 2**20


def _measured() -> pd.DataFrame:
    rows = []
    for strategy in ("monolingual", "hybrid", "mbert"):
        for policy, per_language in (("shared-all", 0), ("selected-scaled", 5 * MIB)):
            for seed in range(3):
                for n in (2, 4, 8, 11):
                    rows.append({"strategy": strategy, "tokenizer_policy": policy, "source": "measured", "seed": seed,
                                 "n_languages": n, "model": "tiny", "cpu_model": "Test CPU",
                                 "step_time_p50_s": 0.12 + 0.001 * ((7 * n + seed) % 3) + (0.004 * n if per_language else 0.0),
                                 "peak_tensor_bytes": 140 * MIB + (MIB + per_language) * n + seed * 1000})  # fmt: skip
    return pd.DataFrame(rows)


def _predicted() -> pd.DataFrame:
    rows = pd.DataFrame([{"model": "xlmr-base", "batch_size": 100, "strategy": s, "device_type": "cuda", "mixed_precision": "bf16",
                          "source": "predicted", "n_languages": n, "seed": 0, "peak_tensor_bytes": (gib - 1) * GiB,
                          "predicted_margin_bytes": GiB}
                         for s, scale in (("monolingual", 1.0), ("hybrid", 1.0), ("mbert", 1.6))
                         for n, gib in ((2, 12.0 * scale), (32, 20.0 * scale), (104, 30.0 * scale))])  # fmt: skip
    return predicted_rows(rows)  # what answer_block hands on: with the totals


def test_the_table_separates_a_fixed_from_a_growing_vocabulary():
    table = answer_table(_measured(), _predicted())
    lines = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[2:]}
    assert list(lines) == ["monolingual", "hybrid", "mbert"]  # the registry's order
    hybrid = lines["hybrid"].split(" | ")
    assert hybrid[1].startswith("flat") and hybrid[2].startswith("+4.00 ms")  # time per step: fixed flat, growing 4 ms/language
    assert hybrid[3].startswith("+1.00 MiB") and hybrid[4].startswith("+6.00 MiB")  # activations; plus the vocabulary
    assert hybrid[5] == "30.0" and hybrid[6] == "to L=2" and hybrid[7].startswith("to L=32")  # 16 and 24 GiB
    assert lines["mbert"].split(" | ")[5:8] == ["48.0", "none", "to L=2 |"]  # 19.2 GiB at L=2, 32 GiB at L=32
    assert "predicted GiB at L=104 (xlmr-base, batch 100)" in table.splitlines()[0]


def test_without_predictions_the_table_and_figure_keep_the_measured_part():
    table = answer_table(_measured(), pd.DataFrame())
    assert "predicted" not in table and len(table.splitlines()) == 5
    assert len(answer_figure(_measured(), pd.DataFrame()).axes) == 2
    assert len(answer_figure(_measured(), _predicted()).axes) == 3


def test_the_quality_column_takes_the_measured_arm_in_the_arms_precision():
    measured = _measured().assign(alpha=lambda t: t["strategy"].map({"hybrid": 0.5}))
    quality = pd.DataFrame([
        {"strategy": "hybrid", "alpha": 0.5, "mixed_precision": "no", "eval_heldout_map_multi": 0.6, "eval_zeroshot_map_multi": 0.5},
        {"strategy": "hybrid", "alpha": 0.5, "mixed_precision": "no", "eval_heldout_map_multi": 0.7, "eval_zeroshot_map_multi": 0.7},
        {"strategy": "hybrid", "alpha": 0.5, "mixed_precision": "bf16", "eval_heldout_map_multi": 0.0, "eval_zeroshot_map_multi": 0.0},
        # most runs are fp32 here: the bf16 run above is a parity check, not the arm
        {"strategy": "hybrid", "alpha": 0.25, "mixed_precision": "no", "eval_heldout_map_multi": 0.0, "eval_zeroshot_map_multi": 0.0},
        {"strategy": "monolingual", "alpha": None, "mixed_precision": "no", "eval_heldout_map_multi": 0.4, "eval_zeroshot_map_multi": 0.3},
    ])  # fmt: skip
    assert quality_cells(measured, quality) == {"hybrid": "0.650 / 0.600 (n=2)", "monolingual": "0.400 / 0.300 (n=1)"}
    table = answer_table(measured, _predicted(), quality)
    mbert = next(line for line in table.splitlines() if line.startswith("| mbert"))
    assert table.splitlines()[0].endswith("(quality experiment) |") and mbert.endswith("| not an arm |")
