"""`--tier-report FILE`: this pytest session's counts and wall time as a file, for docs/testing.md's tier block.

    python -m pytest --tier-report results/tests/fast.json
    python -m pytest -m slow --tier-report results/tests/slow.json

Writes FILE (bench.results.tiers.tier_summary: the tier, each outcome's count, wall seconds, exit status) and its
provenance sidecar (commit, tree state, CPU and its flags, the machine's calibration measured before collection,
the exact command). Only a whole tier can be reported: test paths or -k would time part of one. tests/conftest.py
imports these hooks; another suite loads them with `-p tier_report` (this directory on the path).
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest

_HEADER = pytest.StashKey[dict]()
_STARTED = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--tier-report", type=Path, metavar="FILE",
                     help="write this tier's counts and wall time to FILE (JSON) and its provenance beside it")


def pytest_configure(config: pytest.Config) -> None:
    partial = config.args_source == pytest.Config.ArgsSource.ARGS or config.option.keyword  # paths or -k given
    if config.getoption("tier_report") and partial:
        raise pytest.UsageError("--tier-report times a whole tier: run it without test paths or -k")


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if config.getoption("tier_report"):
        # Imported only when asked: every session loads these hooks, and a report's imports should not slow or break it.
        from bench.config import compose_config
        from bench.measure.evidence import evidence_header

        command = "python -m pytest " + shlex.join(config.invocation_params.args)
        threads = compose_config("config", []).train.threads  # a run's threads: the unit a sweep calibrates in
        config.stash[_HEADER] = evidence_header(command, threads)  # measured before collection and the first test
        config.stash[_STARTED] = time.perf_counter()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    path = config.getoption("tier_report")
    if path is None or _STARTED not in config.stash:
        return
    wall_s = time.perf_counter() - config.stash[_STARTED]
    from bench.measure.evidence import write_evidence
    from bench.results.tiers import tier_summary

    stats = config.pluginmanager.get_plugin("terminalreporter").stats  # reports by outcome, as pytest's summary counts
    counts = {outcome: len(reports) for outcome, reports in stats.items()}
    summary = tier_summary(config.option.markexpr, counts, wall_s, int(exitstatus))
    write_evidence(path, json.dumps(summary, indent=1) + "\n", config.stash[_HEADER])
