"""Shared fixtures: the shipped data loaded once per session, and a tiny composed run config; the hooks of
`--tier-report FILE` (tests/tier_report.py: this tier's counts and wall time, for docs/testing.md)."""

from __future__ import annotations

import pytest
import torch

from bench.data.lareqa import load_lareqa, split_by_article
from tier_report import pytest_addoption, pytest_configure, pytest_sessionfinish, pytest_sessionstart  # noqa: F401

XQUAD_LANGS = ("en", "de", "ru", "es", "zh", "vi", "ar", "tr", "el", "hi", "th")
MLQA_LANGS = ("ar", "de", "en", "es", "hi", "vi", "zh")


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)  # tests are small; one thread avoids OpenMP spin-waiting on 2 cores


@pytest.fixture
def fresh_accelerator():
    """Real runs in one test process share accelerate's singleton state (mixed precision, device): reset it
    around each test that runs one (`pytestmark = pytest.mark.usefixtures("fresh_accelerator")`)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="session")
def xquad():
    return load_lareqa("xquad-r", "data/lareqa/xquad-r", XQUAD_LANGS)


@pytest.fixture(scope="session")
def mlqa():
    return load_lareqa("mlqa-r", "data/lareqa/mlqa-r", MLQA_LANGS)


@pytest.fixture(scope="session")
def xquad_split(xquad):
    return split_by_article(xquad, 0.25)


def quick_run(steps: int, batch_size: int, threads: int = 1, warmup: int | None = None, max_length: int | None = None) -> list[str]:
    """The overrides every fast test's run shares, written once: a fixed budget of `steps`, a small batch, its
    threads, no FLOP counting; a test adds what it is about (strategy, languages, evaluation, results.dir)."""
    overrides = ["train.budget=fixed", f"train.steps={steps}", f"train.batch_size={batch_size}", f"train.threads={threads}",
                 "profiler.count_flops=false"]  # fmt: skip
    overrides += [f"train.warmup_steps={warmup}"] if warmup is not None else []
    return overrides + ([f"train.max_length={max_length}"] if max_length is not None else [])


def compose(*overrides: str):
    """One run's validated config from conf/ and overrides (what `python -m bench.run` would run)."""
    from bench.config import plan_runs

    (planned,) = plan_runs("config", list(overrides), sweep=False)
    return planned.config
