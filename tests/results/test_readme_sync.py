"""The README's generated blocks equal what their generators make from the committed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import PROJECT_ROOT
from bench.errors import DataError
from bench.results.readme_sync import block_names, read_block, replace_block

README = PROJECT_ROOT / "README.md"
DOCUMENTS = [README, *sorted((PROJECT_ROOT / "docs").glob("*.md")), *sorted((PROJECT_ROOT / "results").glob("*/STATUS.md"))]


def regenerate(name: str) -> str:
    """The block as its generator writes it now, from the committed files."""
    kind, _, experiment = name.partition(":")
    if kind == "verdict":
        from bench.results.claims import evaluate_claims, load_arms, load_claims
        from bench.verdict import readme_block

        claims = load_claims(PROJECT_ROOT / "conf" / "claims" / f"{experiment}.yaml")
        results_dir = PROJECT_ROOT / claims.results_dir
        frame = evaluate_claims(claims, load_arms(claims, results_dir))
        return readme_block(frame, claims, claims.results_dir)
    if kind in ("growth", "table", "devices", "progress", "time", "prediction-check"):
        from bench.results.markdown import document_blocks

        return document_blocks(Path("results") / experiment.split(":")[0])[name]()
    if kind == "tiers":
        from bench.results.tiers import tiers_block

        return tiers_block(Path("results") / experiment)
    if kind == "answer":
        from bench.results.answer import answer_block

        predicted = Path("results/predict-104")
        return answer_block(Path("results/scaling"), predicted if predicted.is_dir() else None, Path("results/alpha-frontier"))
    raise AssertionError(f"README block {name!r} has no generator in this test")


@pytest.mark.parametrize(("document", "name"), [(d, n) for d in DOCUMENTS for n in block_names(d.read_text())],
                         ids=lambda value: value.name if isinstance(value, Path) else value)
def test_every_generated_block_matches_its_files(document, name, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    assert read_block(document.read_text(), name) == regenerate(name), (
        f"{document.name}: block {name} differs from its files: regenerate it "
        "(python -m bench.verdict conf/claims/... --readme FILE, or python -m bench.report results/... --readme FILE)")


def test_an_edited_cell_is_caught():
    text = "intro\n<!-- generated:t -->\n| a | b |\n| --- | --- |\n| 1 | 2 |\n<!-- /generated:t -->\nrest\n"
    assert block_names(text) == ["t"]
    assert block_names("<!-- generated:verdict:alpha-frontier -->") == ["verdict:alpha-frontier"]  # names carry a colon
    edited = text.replace("| 1 | 2 |", "| 1 | 3 |")
    assert read_block(edited, "t") != read_block(text, "t")  # what the parametrized test compares
    assert replace_block(edited, "t", read_block(text, "t")) == text  # regenerating restores it
    with pytest.raises(DataError, match="exactly one"):
        read_block(text + "<!-- generated:t -->", "t")
