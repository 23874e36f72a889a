"""The sweep end to end: rows, plots, resume, failure isolation, interruption, corrupt files, launchers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from bench.results.store import RUNS_DIR, consolidate, read_runs
from bench.results.schema import arrow_schema

pytestmark = pytest.mark.slow

FAST = ["eval=none", "train.steps_per_language=2", "train.warmup_steps=1", "train.batch_size=8", "train.threads=1"]


def sweep(results_dir: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "bench.sweep", *FAST, f"results.dir={results_dir}", *overrides]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def test_small_sweep_writes_rows_schema_and_plots(tmp_path):
    proc = sweep(tmp_path, "strategy=monolingual,mbert", "languages=2,3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = pd.read_parquet(tmp_path / "results.parquet")
    assert len(table) == 4 and set(table["status"]) == {"ok"}
    assert list(table.columns) == arrow_schema().names
    assert sorted(table["n_languages"]) == [2, 2, 3, 3]
    mono = table[table["strategy"] == "monolingual"]
    assert (mono["mono_batch_fraction"] == 1.0).all() and (mono["cross_pair_fraction"] == 0.0).all()
    assert (table["peak_tensor_bytes"] > 0).all() and (table["samples_per_s"] > 0).all()
    assert (table["steps"] == table["n_languages"] * 2).all()
    assert any((tmp_path / "plots").glob("*.png"))
    import json

    entries = [json.loads(line) for line in (tmp_path / "sweeps.jsonl").read_text().splitlines()]
    start, end = entries[0]["calibration"], entries[-1]["calibration_end"]  # measured at both ends: drift is visible
    assert start["trials"] >= 3 and 0 <= start["matmul_spread"] and end["matmul_gflops"] > 0
    assert entries[-1]["calibration_drift"] == round(end["matmul_gflops"] / start["matmul_gflops"] - 1, 3)
    phases = entries[-1]["phases_s"]  # where the sweep's wall time went, the runs' own stages being in the rows
    assert {"planning", "calibration", "reference_levels", "vocabularies", "runs", "calibration_end", "report"} <= set(phases)
    assert entries[-1]["startup_s"] > 0 and sum(phases.values()) <= entries[-1]["wall_s"] + 0.01
    assert phases["runs"] >= table["wall_s"].sum()  # every run's own wall time is inside the runs phase
    assert "4/4 runs ok" in proc.stdout

    again = sweep(tmp_path, "strategy=monolingual,mbert", "languages=2,3")
    assert again.returncode == 0
    assert "4 runs planned, 4 already ok, 0 to run" in again.stdout
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 4


def test_one_failing_run_does_not_stop_the_others(tmp_path):
    # A batch larger than the data's parallel groups fails inside its own run, not at planning.
    proc = sweep(tmp_path, "strategy=hybrid", "languages=2", "train.batch_size=8,100000")
    assert proc.returncode == 1
    table = pd.read_parquet(tmp_path / "results.parquet")
    assert sorted(table["status"]) == ["failed", "ok"]
    failed = table[table["status"] == "failed"].iloc[0]
    assert failed["error_type"] == "BatchConfigError" and "exceeds the" in failed["error_message"]
    assert failed["wall_s"] > 0 and failed["peak_rss_bytes"] > 0, "a failed row says how far the run got"
    assert "1 failed" in proc.stdout and "Traceback" not in proc.stdout

    resumed = sweep(tmp_path, "strategy=hybrid", "languages=2", "train.batch_size=8,100000")
    assert "2 runs planned, 1 already ok, 1 to run" in resumed.stdout
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 2, "a re-run replaces its row, never duplicates it"


def test_corrupt_run_file_is_skipped_with_one_clean_line(tmp_path, capsys):
    proc = sweep(tmp_path, "strategy=monolingual", "languages=2")
    assert proc.returncode == 0
    (tmp_path / RUNS_DIR / "torn.parquet").write_bytes(b"PAR1 not really parquet")
    assert len(read_runs(tmp_path)) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: skipping unreadable run file") and "torn.parquet" in lines[0]
    assert len(consolidate(tmp_path)) == 1
    assert "torn.parquet" in capsys.readouterr().err
    resumed = sweep(tmp_path, "strategy=monolingual", "languages=2")  # the sweep's own notice: one line, no source line
    notices = [line for line in resumed.stderr.splitlines() if "torn.parquet" in line]
    assert notices and all(line.startswith("warning: skipping unreadable run file") for line in notices), resumed.stderr
    assert "warnings.warn" not in resumed.stderr and "UserWarning" not in resumed.stderr


def test_interrupted_sweep_resumes_to_the_full_set_without_duplicates(tmp_path):
    args = ["strategy=monolingual,crosslingual,mbert", "languages=2"]
    command = [sys.executable, "-m", "bench.sweep", *FAST, f"results.dir={tmp_path}", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / RUNS_DIR).glob("*.parquet")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert not list(tmp_path.rglob("*.tmp")), "no partial files are left behind"
    read_runs(tmp_path)  # every file written so far is readable

    # A hard kill at an arbitrary moment leaves every earlier file readable too.
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(8)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    read_runs(tmp_path)

    final = sweep(tmp_path, *args)
    assert final.returncode == 0, final.stdout[-2000:]
    table = pd.read_parquet(tmp_path / "results.parquet")
    assert sorted(table["strategy"]) == ["crosslingual", "mbert", "monolingual"]
    assert set(table["status"]) == {"ok"} and table["run_id"].is_unique


def test_parallel_launcher_gives_the_same_rows_as_the_sequential_one(tmp_path):
    args = ["strategy=hybrid,mbert", "languages=2"]
    assert sweep(tmp_path / "seq", *args).returncode == 0
    parallel = sweep(tmp_path / "par", *args, "launcher=parallel")
    assert parallel.returncode == 0, parallel.stderr[-2000:]
    seq = pd.read_parquet(tmp_path / "seq" / "results.parquet").sort_values("run_id").reset_index(drop=True)
    par = pd.read_parquet(tmp_path / "par" / "results.parquet").sort_values("run_id").reset_index(drop=True)
    assert list(seq["run_id"]) == list(par["run_id"])
    assert (par["concurrency"] == 2).all() and (seq["concurrency"] == 1).all()
    for column in ("peak_tensor_bytes", "peak_activation_bytes", "mono_batch_fraction", "cross_pair_fraction", "probed_step_flops", "vocab_size"):
        assert list(seq[column]) == list(par[column]), column
    assert [list(c) for c in seq["loss_curve"]] == [list(c) for c in par["loss_curve"]]


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _is_run(process: psutil.Process) -> bool:
    """A run: forked from the run server (named bench.run) or a new `python -m bench.run` interpreter."""
    try:
        return process.name() == "bench.run" or "bench.run" in process.cmdline()
    except psutil.NoSuchProcess:
        return False


def _wait_for_run_child(sweep_pid: int, timeout: float = 300) -> psutil.Process:
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = [c for c in _children(sweep_pid) if _is_run(c)]
        if runs:
            return runs[0]
        time.sleep(0.1)
    raise AssertionError("the sweep started no run")


def test_a_killed_sweeps_child_dies_with_it_and_the_resumed_sweep_never_overlaps_it(tmp_path):
    """SIGKILL of the sweep's process group (the child has its own session, so the signal misses it):
    the parent-death signal must end the child, so the resumed sweep never runs beside an orphan."""
    args = ["strategy=monolingual,crosslingual", "languages=2", "train.steps_per_language=100"]  # runs of 20 s or more
    command = [sys.executable, "-m", "bench.sweep", *FAST, f"results.dir={tmp_path}", *args]
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    child = _wait_for_run_child(killed.pid)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    child.wait(timeout=5)  # psutil raises TimeoutExpired if the orphan lives on
    assert not child.is_running()

    final = sweep(tmp_path, *args)
    assert final.returncode == 0, final.stdout[-2000:]
    table = pd.read_parquet(tmp_path / "results.parquet")
    assert table["run_id"].is_unique and set(table["status"]) == {"ok"} and len(table) == 2
    # No two measured runs overlapped in time: each started after the one before it ended.
    spans = sorted((pd.Timestamp(r.created_at).timestamp(), pd.Timestamp(r.created_at).timestamp() + r.wall_s)
                   for r in table.itertuples())  # fmt: skip
    assert all(later[0] >= earlier[1] - 1.0 for earlier, later in zip(spans, spans[1:]))


def test_a_second_sweep_or_run_into_a_locked_directory_fails_with_one_line(tmp_path):
    """The lock is held here, deterministically: no race with how fast another process runs (a sweep that
    had already finished used to release it before the run that should have been refused started)."""
    from bench.launch import results_lock

    args = ["strategy=monolingual", "languages=2"]
    with results_lock(tmp_path):
        second = sweep(tmp_path, *args)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and f"is in use by pid {os.getpid()}" in lines[0], second.stderr
        single = subprocess.run([sys.executable, "-m", "bench.run", *FAST, f"results.dir={tmp_path}", *args],
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert single.returncode == 2 and f"is in use by pid {os.getpid()}" in single.stderr
        assert not (tmp_path / RUNS_DIR).exists() or not any((tmp_path / RUNS_DIR).iterdir())  # refused before running
    assert sweep(tmp_path, *args).returncode == 0  # free again once the holder lets go


def test_a_running_sweep_holds_the_lock_of_its_directory(tmp_path):
    """While a sweep's run is alive, its results.dir is locked by the sweep's pid (probed in this process
    the moment the run child exists, not by starting another process that might come too late)."""
    import fcntl

    from bench.launch import LOCK_FILE

    command = [sys.executable, "-m", "bench.sweep", *FAST, f"results.dir={tmp_path}", "strategy=monolingual",
               "languages=2", "train.steps_per_language=30"]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        child = _wait_for_run_child(first.pid)
        with open(tmp_path / LOCK_FILE, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                took_it = True
            except BlockingIOError:
                took_it = False
            child_was_alive = child.is_running()
        # The probe takes microseconds after the run child appears; the child needs seconds just to import torch.
        assert child_was_alive
        assert not took_it  # the sweep holds the lock while its run is alive
        assert f"pid {first.pid}" in (tmp_path / LOCK_FILE).read_text()
    finally:
        first.wait(timeout=300)
    assert first.returncode == 0
