"""Tests of bench.results.language_tax on hand-made inputs whose answers are known."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.core.pairs import PairRef
from bench.data.collate import SpecialIds, TokenizedPairs, collate_contrastive
from bench.results.language_tax import (
    count_tokens, length_summary, paired_ratio, padding_row, plot_language_tax, render_markdown, time_rows,
    time_table_markdown, token_tax_rows,
)  # fmt: skip


def fake_encode(texts: list[str]) -> list[list[int]]:
    """One token per whitespace word plus two special tokens, like [CLS] ... [SEP]."""
    return [[101] + [7] * len(t.split()) + [102] for t in texts]


# Parallel groups 0 and 1: German needs 1.5 times English's words; Thai has an extra group 2 English lacks.
TEXTS = {
    "en": {"question": {0: "a b", 1: "a b c d"}, "answer": {0: "a", 1: "a b c"}},
    "de": {"question": {0: "a b c d e", 1: "a b c d e f g"}, "answer": {0: "a b", 1: "a b c d"}},
    "th": {"question": {0: "a b", 1: "a b c d", 2: "a b c d e f g h"}, "answer": {0: "a", 1: "a b c", 2: "a"}},
}


def lengths_of(texts):
    return {lang: {kind: count_tokens(fake_encode, by_group) for kind, by_group in kinds.items()} for lang, kinds in texts.items()}


def test_count_tokens_keeps_keys_and_counts_special_tokens():
    assert count_tokens(fake_encode, {"x": "a b c", ("g", "de"): ""}) == {"x": 5, ("g", "de"): 2}


def test_paired_ratio_uses_only_shared_groups():
    assert paired_ratio({0: 6, 1: 9}, {0: 4, 1: 6}) == pytest.approx(1.5)
    assert paired_ratio({0: 4, 1: 6, 2: 100}, {0: 4, 1: 6}) == 1.0  # group 2 has no English: left out
    with pytest.raises(ValueError):
        paired_ratio({5: 3}, {0: 4})


def test_length_summary_mean_median_and_truncation():
    summary = length_summary([2, 4, 10, 5], max_length=4)  # a text of exactly max_length tokens is not truncated
    assert summary == {"mean_tokens": 5.25, "median_tokens": 4.5, "truncated_frac": 0.5}
    assert "truncated_frac" not in length_summary([1])
    with pytest.raises(ValueError):
        length_summary([])


def test_token_tax_rows_exact_means_and_ratios():
    rows = token_tax_rows("fake", lengths_of(TEXTS), {"de": 0.25}, reference="en", max_length=5)
    by_lang = {r["language"]: r for r in rows}
    assert [r["language"] for r in rows] == ["en", "de", "th"]
    en, de, th = by_lang["en"], by_lang["de"], by_lang["th"]
    assert en["question_ratio"] == 1.0 and en["answer_ratio"] == 1.0
    # en questions 4 and 6 tokens, de 7 and 9: mean 5 vs 8, ratio 16/10
    assert (en["question_mean_tokens"], de["question_mean_tokens"]) == (5.0, 8.0)
    assert de["question_ratio"] == pytest.approx(1.6)
    assert de["answer_ratio"] == pytest.approx((4 + 6) / (3 + 5))
    assert de["question_truncated_frac"] == 1.0 and en["question_truncated_frac"] == 0.5
    assert de["unk_rate"] == 0.25 and en["unk_rate"] is None
    # Thai's extra group counts in its own mean and median, not in the ratio to English
    assert th["n_texts"] == 3 and th["question_mean_tokens"] == pytest.approx(20 / 3) and th["question_median_tokens"] == 6.0
    assert th["question_ratio"] == 1.0


def test_token_tax_rows_needs_the_reference_language():
    with pytest.raises(ValueError, match="reference"):
        token_tax_rows("fake", lengths_of({"de": TEXTS["de"]}), {}, reference="en")


def test_padding_of_a_collated_contrastive_batch():
    # queries of 2 and 4 tokens pad to 2 x 4 = 8 (6 real); passages of 3 and 1 pad to 2 x 3 = 6 (4 real)
    tokenized = TokenizedPairs(queries={(0, "en"): [1, 5], (1, "de"): [1, 5, 6, 2]},
                               passages={(0, "de"): [1, 7, 2], (1, "en"): [1]})  # fmt: skip
    special = SpecialIds(pad=0, mask=3, special=frozenset({0, 1, 2, 3}), vocab_size=10)
    batch = collate_contrastive([PairRef(0, "en", "de"), PairRef(1, "de", "en")], tokenized, special)
    row = padding_row("crosslingual", "contrastive", "fake", [batch, batch])
    assert (row["n_batches"], row["padded_tokens"], row["real_tokens"]) == (2, 28, 20)
    assert row["padding_fraction"] == pytest.approx(1 - 20 / 28)


def test_padding_fraction_is_pooled_over_batches_not_averaged():
    batches = [SimpleNamespace(padded_tokens=10, real_tokens=10), SimpleNamespace(padded_tokens=90, real_tokens=45)]
    assert padding_row("s", "contrastive", "t", batches)["padding_fraction"] == pytest.approx(0.45)  # mean of fractions: 0.25
    with pytest.raises(ValueError):
        padding_row("s", "contrastive", "t", [])


def test_markdown_and_figure(tmp_path):
    tokens = token_tax_rows("fake", lengths_of(TEXTS), {}, max_length=5)
    padding = [padding_row(s, "contrastive", "fake", [SimpleNamespace(padded_tokens=8, real_tokens=6)]) for s in ("mono", "cross")]
    text = render_markdown("Tax", ["a note"], tokens, padding, "Pending: time.", "language_tax.png")
    assert "## Tokens per text: fake" in text and "| de | 3 |" not in text and "| de | 2 |" in text
    assert "| 1.600 |" in text and "| mono | contrastive | 1 | 8 | 6 | 25.00% |" in text
    assert text.count("Pending: time.") == 1
    paths = plot_language_tax(tokens, padding, tmp_path)
    assert [p.name for p in paths] == ["language_tax.png", "language_tax.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_time_rows_medians_quartiles_and_ratios_to_the_reference():
    compute = {"en": [0.10, 0.30, 0.20, 0.90], "th": [0.41, 0.39, 0.40]}  # an outlier moves a mean, not a median
    step = {"en": [0.2, 0.4, 0.3, 1.0], "th": [0.5, 0.5, 0.5]}
    tokens = {"en": [100, 100, 100, 100], "th": [180, 180, 180]}
    en, th = time_rows("tiny", compute, step, tokens, batch_size=10)
    assert en["compute_median_s"] == pytest.approx(0.25) and en["compute_ratio"] == 1.0
    assert (en["compute_q1_s"], en["compute_q3_s"]) == (pytest.approx(0.175), pytest.approx(0.45))
    assert th["compute_ratio"] == pytest.approx(0.40 / 0.25) and th["tokens_ratio"] == pytest.approx(1.8)
    assert th["step_s_per_example"] == pytest.approx(0.05) and en["step_s_per_example"] == pytest.approx(0.035)
    table = time_table_markdown([en, th])
    assert "| tiny | th | 3 | 180 | 1.800 | 400.0 ms [395.0, 405.0] | 1.600 | 50.00 |" in table
    with pytest.raises(ValueError, match="reference language 'en'"):
        time_rows("tiny", {"th": [1, 2, 3]}, step, tokens, 10)
    with pytest.raises(ValueError, match="3 or more"):
        time_rows("tiny", {"en": [1, 2]}, step, tokens, 10)


def test_the_figure_gains_a_timing_panel(tmp_path):
    tokens = token_tax_rows("fake", lengths_of(TEXTS), {}, max_length=5)
    padding = [padding_row("mono", "contrastive", "fake", [SimpleNamespace(padded_tokens=8, real_tokens=6)])]
    timed = time_rows("tiny", {"en": [1, 2, 3], "de": [2, 3, 4]}, {"en": [1, 2, 3], "de": [2, 3, 4]},
                      {"en": [5, 5, 5], "de": [6, 6, 6]}, 4)  # fmt: skip
    plot_language_tax(tokens, padding, tmp_path / "two")
    plot_language_tax(tokens, padding, tmp_path / "three", timed)
    from matplotlib.image import imread

    assert imread(tmp_path / "three" / "language_tax.png").shape[1] > 1.3 * imread(tmp_path / "two" / "language_tax.png").shape[1]
