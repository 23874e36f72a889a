"""Launchers are registered by name; every name the config accepts has one, and each calls back once per run."""

from __future__ import annotations

import dataclasses

import pytest

from bench import launch
from bench.config.run_config import LAUNCHERS as CONFIG_LAUNCHERS
from bench.errors import BenchError
from tests.conftest import compose


def test_every_configurable_launcher_is_registered():
    assert set(launch.LAUNCHERS) == set(CONFIG_LAUNCHERS)


@pytest.mark.parametrize("name", ["local", "parallel"])
def test_a_launcher_reports_every_run_once(name, monkeypatch):
    cfg = compose(f"launcher={name}")
    configs = [dataclasses.replace(cfg, seed=seed) for seed in range(3)]
    monkeypatch.setattr(launch, "launch_run", lambda c: f"ok-{c.seed}")
    done = []
    launch.launch_all(configs, lambda c, status: done.append((c.seed, status)))
    assert sorted(done) == [(0, "ok-0"), (1, "ok-1"), (2, "ok-2")]


def test_an_unregistered_launcher_is_one_line(monkeypatch):
    monkeypatch.delitem(launch.LAUNCHERS, "local")  # configured (conf/launcher/local.yaml) but with no launcher
    with pytest.raises(BenchError, match="unknown launcher 'local'; choose from parallel, slurm"):
        launch.launch_all([compose("launcher=local")], lambda c, s: None)
