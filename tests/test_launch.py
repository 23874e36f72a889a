"""Launchers are registered by name; every name the config accepts has one, and each calls back once per run."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

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


def test_the_run_server_forks_each_run_and_reports_its_exit_code(tmp_path):
    """The server answers with the run's pid, then its exit code; the run does what `python -m bench.run
    --config-file F` does (here: refuse a missing config with one line, exit 2). That a forked run is named
    bench.run is checked where one lives long enough to look: the SIGKILL test below finds it by that name."""
    server = launch.RunServer("bench.run")
    try:
        log = tmp_path / "run.out"
        run = server.start(tmp_path / "missing.json", log)
        assert run.wait() == 2 and run.pid != server.process.pid
        assert log.read_text().strip().splitlines() == [f"error: cannot read run config {tmp_path / 'missing.json'} "
                                                        f"([Errno 2] No such file or directory: '{tmp_path / 'missing.json'}')"]  # fmt: skip
        second = server.start(tmp_path / "missing.json", tmp_path / "second.out")  # one server, many runs
        assert second.wait() == 2 and second.pid != run.pid
    finally:
        server.close()
    assert server.process.returncode == 0, "the server exits when its launcher closes its stdin"


def test_a_run_server_that_dies_before_the_run_starts_leaves_a_failed_row(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from bench.results.store import read_run

    def start(config_file, log_path):
        raise launch.ServerGone(1)  # e.g. its imports failed

    monkeypatch.setattr(launch, "can_fork", lambda cfg: True)
    monkeypatch.setattr(launch, "_run_server", lambda entry: SimpleNamespace(start=start))
    cfg = compose(f"results.dir={tmp_path}")
    assert launch.launch_run(cfg) == "failed"
    assert read_run(tmp_path, cfg.run_id).error_message.startswith("exited with code 1 without a result")


def test_a_run_lost_with_its_killed_server_says_so_instead_of_blaming_memory(tmp_path, monkeypatch):
    """A server SIGKILLed mid-run takes its run with it (parent-death signal): the row says the run was not at
    fault, not 'most likely the kernel's out-of-memory killer' as a SIGKILLed run alone does."""
    from types import SimpleNamespace

    from bench.results.store import read_run

    def answer():
        raise launch.ServerGone(-9)  # the server's own exit: killed

    server = SimpleNamespace(_answer=answer)
    monkeypatch.setattr(launch, "can_fork", lambda cfg: True)
    monkeypatch.setattr(launch, "_run_server", lambda entry: SimpleNamespace(start=lambda c, l: launch.ForkedRun(server, 1)))
    cfg = compose(f"results.dir={tmp_path}")
    assert launch.launch_run(cfg) == "failed"
    row = read_run(tmp_path, cfg.run_id)
    assert row.error_message.startswith("killed with its run server") and "out-of-memory" not in row.error_message
    assert row.command == f"python -m bench.run --config-file {tmp_path / 'configs' / cfg.run_id}.json"


def test_the_run_entry_module_is_configured_not_imported_by_launch():
    """launch names no run module: the entry comes from conf/launcher (a bad one is one line)."""
    assert compose().launcher.entry == "bench.run"
    assert launch.child_command(Path("c.json"), 1, "bench.run")[1:] == ["-m", "bench.run", "--config-file", "c.json"]
    with pytest.raises(BenchError, match="launcher.entry must be a module name"):
        compose("launcher.entry=not a module")


def test_runs_on_a_gpu_machine_or_several_ranks_start_a_new_interpreter(monkeypatch):
    monkeypatch.setattr(launch.torch.cuda, "is_available", lambda: False)
    assert launch.can_fork(compose("device=cpu")) and launch.can_fork(compose("mode=predict", "device=cuda"))
    assert not launch.can_fork(compose("device=cpu", "train.devices=2"))  # torchrun starts the ranks
    monkeypatch.setattr(launch.torch.cuda, "is_available", lambda: True)  # CUDA would not survive the fork
    assert not launch.can_fork(compose("device=cpu"))


@pytest.mark.slow
def test_a_forked_run_measures_what_a_new_interpreter_measures(tmp_path, monkeypatch):
    """The same config run forked from the server and in a new interpreter: the same tensor peaks and loss
    curve, and host memory within 5%: without touching the pages its imports made resident, a forked run read 20% low."""
    from bench.results.store import read_run
    from tests.conftest import quick_run

    overrides = [*quick_run(steps=6, batch_size=8, warmup=1), "strategy=hybrid", "languages=2", "eval=none", "device=cpu"]
    forked_cfg, fresh_cfg = (compose(*overrides, f"results.dir={tmp_path / name}") for name in ("forked", "fresh"))
    try:
        assert launch.launch_run(forked_cfg) == "ok"
    finally:
        launch.close_run_servers()
    monkeypatch.setattr(launch, "can_fork", lambda cfg: False)
    assert launch.launch_run(fresh_cfg) == "ok"
    forked, fresh = read_run(tmp_path / "forked", forked_cfg.run_id), read_run(tmp_path / "fresh", fresh_cfg.run_id)
    for field in ("peak_tensor_bytes", "peak_activation_bytes", "peak_optimizer_bytes", "tracked_step", "loss_curve"):
        assert getattr(forked, field) == getattr(fresh, field), field
    assert abs(forked.peak_rss_bytes / fresh.peak_rss_bytes - 1) < 0.05, (forked.peak_rss_bytes, fresh.peak_rss_bytes)


@pytest.mark.slow
def test_a_forked_run_killed_by_the_kernel_still_leaves_a_row(tmp_path):
    """SIGKILL (what the out-of-memory killer sends) of a forked run: the server reports -9, the row says oom."""
    import threading

    import psutil

    from bench.results.store import read_run
    from tests.conftest import quick_run

    cfg = compose(*quick_run(steps=2000, batch_size=8), "strategy=hybrid", "languages=2", "eval=none", "device=cpu",
                  f"results.dir={tmp_path}")  # fmt: skip
    status = {}
    launching = threading.Thread(target=lambda: status.update(run=launch.launch_run(cfg)))
    launching.start()
    try:
        deadline = time.time() + 120
        runs = []
        while not runs and time.time() < deadline:
            runs = [p for p in psutil.Process().children(recursive=True) if p.name() == "bench.run"]
            time.sleep(0.1)
        assert runs, "no forked run appeared"
        time.sleep(3)  # past its imports and into training
        runs[0].kill()
        launching.join(timeout=60)
    finally:
        launch.close_run_servers()
    assert status["run"] == "oom"
    assert read_run(tmp_path, cfg.run_id).error_message.startswith("killed by SIGKILL")
