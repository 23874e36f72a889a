"""The test tiers as measured: counts and wall time per tier, from the summaries pytest writes when asked.

    python -m pytest --tier-report results/tests/fast.json            # the fast tier
    python -m pytest -m slow --tier-report results/tests/slow.json    # the slow tier
    python -m bench.report results/tests --readme docs/testing.md     # the block `tiers:tests` from those files

tests/tier_report.py (the pytest option) writes each summary, `tier_summary`'s dict, with its provenance
sidecar: commit, tree state, CPU, the machine's calibration before the first test, the exact command.
`tiers_block` renders them for docs/testing.md, so the tiers' counts and times are never typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from bench.errors import DataError
from bench.measure.sidecar import is_sidecar, read_provenance
from bench.results.markdown import markdown_table

TIER_FORMAT = "hybrid-batch-bench test tier"
TIER_NAMES = {"not slow": "fast", "slow": "slow"}  # marker expression -> tier (pyproject's addopts: 'not slow')
OUTCOMES = ("passed", "failed", "skipped", "error", "xfailed", "xpassed")  # pytest's report categories
_RANK = {tier: i for i, tier in enumerate(TIER_NAMES.values())}  # rows in this order, other expressions after


def tier_summary(markexpr: str, counts: dict[str, int], wall_s: float, exit_status: int) -> dict:
    """One session's summary: its tier (named from the marker expression), every outcome's count, wall time."""
    return {"format": TIER_FORMAT, "tier": TIER_NAMES.get(markexpr, markexpr or "all"), "markexpr": markexpr,
            "counts": {outcome: int(counts.get(outcome, 0)) for outcome in OUTCOMES}, "wall_s": round(wall_s, 1),
            "exit_status": exit_status}  # fmt: skip


def read_tiers(directory: Path) -> list[tuple[dict, dict | None]]:
    """Every tier summary in `directory` with its provenance (None without a sidecar), fast tier first."""
    found = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        if is_sidecar(path):
            continue
        try:
            summary = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path} is not valid JSON ({exc})") from None
        if isinstance(summary, dict) and summary.get("format") == TIER_FORMAT:
            found.append((summary, read_provenance(path)))
    return sorted(found, key=lambda pair: (_RANK.get(pair[0]["tier"], len(_RANK)), pair[0]["tier"]))


def holds_tiers(directory: Path) -> bool:
    return bool(read_tiers(directory))


def minutes_seconds(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def tier_row(summary: dict, provenance: dict | None) -> list:
    """A tier's table row; its commit and machine from the provenance sidecar ("unknown" without one)."""
    counts, provenance = summary["counts"], provenance or {}
    commit = (provenance.get("git_commit") or "unknown")[:7] + (" (dirty)" if provenance.get("git_dirty") else "")
    gflops = (provenance.get("calibration") or {}).get("matmul_gflops")
    machine = (provenance.get("cpu_model") or "unknown CPU") + (f", {gflops:.0f} GFLOP/s" if gflops else "")
    return [summary["tier"], f"`{provenance.get('command', '?')}`", counts["passed"], counts["failed"],
            counts["skipped"], counts["error"], minutes_seconds(summary["wall_s"]), commit, machine]


def tiers_block(directory: Path) -> str:
    """docs/testing.md's block `tiers:<directory name>`: one row per tier summary in `directory`."""
    name = directory.as_posix()
    writes = f"`python -m bench.report {name} --readme FILE` writes this block"
    tiers = read_tiers(directory)
    if not tiers:
        return f"No tier summary in `{name}` yet (`python -m pytest --tier-report {name}/fast.json`);\n{writes}."
    header = ["tier", "command", "passed", "failed", "skipped", "errors", "wall time", "commit", "machine"]
    rows = [tier_row(summary, provenance) for summary, provenance in tiers]
    intro = f"From `{name}` ({writes});\nwall time: collection and every test, after the calibration."
    return intro + "\n\n" + markdown_table(header, rows)


def tier_blocks(directory: Path) -> dict[str, Callable[[], str]]:
    """The blocks a document can hold for `directory`'s tier summaries, by name (as markdown.document_blocks)."""
    return {f"tiers:{directory.name}": lambda: tiers_block(directory)}
