"""Quality along L, trained and untrained languages apart: hand-computed per-language values, the verdict report's
tables and the figure, and the verdict entry point on a synthetic results directory along L."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from bench.results.by_language import (
    MACRO, language_levels, language_section, language_table, over_seeds, plot_by_languages,
)  # fmt: skip
from bench.results.claims import parse_claims
from bench.verdict import main as verdict_main
from tests.results.test_claims_languages import LANGS, arm, claims_dict, diff, write_results_dir

# Each language's queries score 0.01 more than the one before it, in mono and multi alike. Every value below is
# BASE[setting] + 0.01 * position + 0.035 (the mean cluster offset, 0.01 * mean of 0..7); seed offsets average to 0.
STEP = 0.01
CLUSTER_MEAN = 0.035


def by_position(setting, query, pool, trained, n) -> float:
    return STEP * LANGS.index(query) if setting in ("mono", "multi") else 0.0


def expected(setting_base: float, *languages: str) -> float:
    return sum(setting_base + STEP * LANGS.index(code) + CLUSTER_MEAN for code in languages) / len(languages)


@pytest.fixture()
def claims():
    return parse_claims(claims_dict(diff("H1", "hybrid-0.5", "crosslingual", "map_mono", at="every")))


@pytest.fixture()
def levels(claims):
    return language_levels(claims, {"monolingual": arm(by_position), "crosslingual": arm()})


def value(levels: pd.DataFrame, **keys) -> pd.Series:
    chosen = pd.Series(True, index=levels.index)
    for key, wanted in keys.items():
        chosen &= levels[key] == wanted
    return levels[chosen]["value"]


def test_each_language_and_each_scope_has_its_hand_computed_value(levels):
    mono = dict(set="xquad-r-heldout", arm="monolingual", metric="map_mono", seed=1)  # seed 1: offset 0
    assert value(levels, n_languages=2, scope="trained", language="de", **mono).item() == pytest.approx(
        expected(0.80, "de"))
    assert value(levels, n_languages=2, scope="trained", language=MACRO, **mono).item() == pytest.approx(
        expected(0.80, "en", "de"))
    assert value(levels, n_languages=2, scope="untrained", language=MACRO, **mono).item() == pytest.approx(
        expected(0.80, "ru", "es"))
    untrained_languages = set(levels[(levels["scope"] == "untrained") & (levels["language"] != MACRO)
                                     & (levels["n_languages"] == 2)]["language"])  # fmt: skip
    assert untrained_languages == {"ru", "es"}
    assert levels[(levels["n_languages"] == 4) & (levels["scope"] == "untrained")].empty  # all four trained at L = 4


def test_the_table_shows_trained_and_untrained_languages_in_rows_apart(claims, levels):
    table = language_table(over_seeds(levels), claims, "xquad-r-heldout", "map_multi")
    lines = table.splitlines()
    assert lines[0] == "| arm | L | languages | seeds | macro | en | de | ru | es |"
    trained_2 = f"| monolingual | 2 | trained | 3 | {expected(0.50, 'en', 'de'):.4f} | {expected(0.50, 'en'):.3f} | "
    assert trained_2 + f"{expected(0.50, 'de'):.3f} |  |  |" in lines
    untrained_2 = f"| monolingual | 2 | untrained | 3 | {expected(0.50, 'ru', 'es'):.4f} |  |  | "
    assert untrained_2 + f"{expected(0.50, 'ru'):.3f} | {expected(0.50, 'es'):.3f} |" in lines
    assert not any(line.startswith("| monolingual | 4 | untrained") for line in lines)
    assert any(line.startswith("| crosslingual | 4 | trained | 3 |") for line in lines)
    assert not any("hybrid-0.5" in line for line in lines)  # an arm without runs has no row
    section = "\n".join(language_section(levels, claims))
    assert "### XQuAD-R held-out: map_mono" in section and "### MLQA-R: map_multi" in section


def test_the_figure_is_written(claims, levels, tmp_path):
    paths = plot_by_languages(levels, claims, tmp_path / "plots")
    assert [p.name for p in paths] == ["quality_by_languages.png", "quality_by_languages.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    empty = plot_by_languages(language_levels(claims, {}), claims, tmp_path / "empty")  # no runs yet: still drawn
    assert all(p.stat().st_size > 1000 for p in empty)


def test_the_verdict_entry_point_reports_a_family_along_l(tmp_path, capsys):
    write_results_dir(tmp_path, {"hybrid-0.5": arm(by_position), "crosslingual": arm(), "monolingual": arm()})
    raw = claims_dict(
        diff("H1", "hybrid-0.5", "crosslingual", "map_mono", at="every"),
        diff("U1", "crosslingual", "monolingual", "map_multi", at=[2], scope="untrained"),
        {"id": "T2", "kind": "trend", "along": "languages", "arm": "hybrid-0.5", "metric": "map_multi",
         "expect": "greater"})  # fmt: skip
    path = tmp_path / "languages.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert verdict_main([str(path), "--results-dir", str(tmp_path)]) == 0
    text = (tmp_path / "verdict.md").read_text()
    for wanted in ("| **H1@L2** |", "| **H1@L4** |", "map_multi, untrained languages", "slope over L of hybrid-0.5 > 0",
                   "## By language: trained and untrained", "- trained / untrained languages:", "- L: a claim made",
                   "![quality by languages](plots/quality_by_languages.png)"):  # fmt: skip
        assert wanted in text, wanted
    # H1@L2: hybrid - cross-lingual on monolingual mAP at L = 2 is the mean position step over the four languages
    assert f"| **H1@L2** | map_mono | hybrid-0.5 − crosslingual > 0 at L = 2 | – | +{STEP * 1.5:.4f} " in text
    assert len(pd.read_parquet(tmp_path / "verdict.parquet")) == 2 * 4  # H1 at 2 L, U1 at 1, T2: 4 tests on 2 sets
    assert (tmp_path / "plots" / "quality_by_languages.png").is_file()
    assert not (tmp_path / "plots" / "alpha_frontier.png").exists()  # no arms along alpha
    assert "wrote" in capsys.readouterr().out
