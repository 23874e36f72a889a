"""The scaling sweep: `python -m bench.sweep languages=2,4,8,11` (a Hydra multirun without -m).

Every run is validated before the first one starts; then Hydra's launcher (local, parallel
or Slurm: `launcher=`) calls `launch_run` once per configuration, which starts the run in a
fresh process (`python -m bench.run`), so no run inherits memory or threads from another.
Runs already recorded as ok in `results.dir` are skipped (resume); at the end the per-run
files are consolidated into `results.parquet` and plotted.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from tqdm import tqdm

from bench.compose import CONF_DIR, PlannedRun, plan_runs
from bench.config import to_run_config
from bench.errors import exit_on_user_error
from bench.plot import plot_results
from bench.results_io import RESULTS_FILE, consolidate, ensure_writable_dir, read_run, read_runs, write_run
from bench.run import describe, prepare_tokenizer, run_id
from bench.schema import SUCCESS

SWEEP_CONFIG = "sweep"
EXIT_INTERRUPTED = 130
# Set by main() for launchers that run jobs in this process; parallel workers just print lines.
_progress: tqdm | None = None


def report_progress(line: str) -> None:
    if _progress is None:
        print(line, flush=True)
        return
    _progress.update(1)
    tqdm.write(line)


def _raise_interrupt(signum, frame) -> None:
    # SIGTERM behaves like Ctrl-C; a BaseException, so Hydra's error reporting does not swallow it.
    raise KeyboardInterrupt(f"signal {signum}")


def completed_run_ids(results_dir: Path) -> set[str]:
    """Runs whose row says ok (or predicted): a resumed sweep skips them."""
    return {r.run_id for r in read_runs(results_dir) if r.status in SUCCESS}


def child_command(overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "bench.run", "--config-name", SWEEP_CONFIG, *overrides]


def run_in_child(overrides: list[str], log_path: Path) -> int:
    """Start one run in a fresh interpreter; on SIGTERM/Ctrl-C pass the signal on and wait for it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        child = subprocess.Popen(child_command(overrides), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGTERM)  # the child records an "interrupted" row and exits
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
            raise


def record_lost_run(planned_cfg, overrides: list[str], returncode: int, log_path: Path) -> str:
    """A child killed before writing its row (e.g. by the OOM killer) still leaves a failed row."""
    record = describe(planned_cfg, "python -m bench.run " + " ".join(overrides))
    if returncode == -signal.SIGKILL:  # on Linux, almost always the kernel's OOM killer
        status, reason = "oom", "killed by SIGKILL (most likely the kernel's out-of-memory killer)"
    elif returncode < 0:
        status, reason = "failed", f"killed by signal {-returncode}"
    else:
        status, reason = "failed", f"exited with code {returncode} without a result"
    record.update(status=status, error_type="ChildProcessError", error_message=f"{reason}; see {log_path}")
    write_run(Path(planned_cfg.results.dir), record)
    return status


@hydra.main(config_path=str(CONF_DIR), config_name=SWEEP_CONFIG, version_base="1.3")
def launch_run(cfg: DictConfig) -> str:
    """Hydra's job function: one configuration of the sweep, run in a child process."""
    overrides = list(HydraConfig.get().overrides.task)
    config = to_run_config(cfg)
    results_dir = Path(config.results.dir)
    rid = run_id(config)
    job = HydraConfig.get().job.num
    previous = read_run(results_dir, rid)
    if not config.results.rerun and previous is not None and previous.status in SUCCESS:
        report_progress(f"[{job + 1}] {rid}: already ok in {results_dir}, skipped")
        return "skipped"
    log_path = results_dir / "logs" / f"{rid}.out"
    started = time.perf_counter()
    returncode = run_in_child(overrides, log_path)
    row = read_run(results_dir, rid)
    status = row.status if row is not None else record_lost_run(config, overrides, returncode, log_path)
    report_progress(f"[{job + 1}] {rid}: {status} in {time.perf_counter() - started:.1f}s")
    return status


def prepare_vocabularies(todo: list[PlannedRun]) -> None:
    """Build each distinct vocabulary once, before runs start: parallel runs must not train their own."""
    seen = set()
    for planned in todo:
        cfg = planned.config
        key = (cfg.data, cfg.tokenizer, cfg.languages if cfg.tokenizer.policy != "shared-all" else None)
        if key not in seen:
            seen.add(key)
            prepare_tokenizer(cfg)


def prepare_results_dirs(planned: list[PlannedRun]) -> list[Path]:
    dirs = sorted({Path(p.config.results.dir) for p in planned})
    for directory in dirs:
        ensure_writable_dir(directory)
        read_runs(directory)  # fails now, as one line, if the directory holds another schema version
    return dirs


def report(results_dir: Path, planned: list[PlannedRun]) -> int:
    """Consolidate, plot, and print where everything is; the number of failed runs of this sweep."""
    table = consolidate(results_dir)
    wanted = {run_id(p.config) for p in planned if Path(p.config.results.dir) == results_dir}
    mine = table[table["run_id"].isin(wanted)]
    failed = mine[~mine["status"].isin(SUCCESS)]
    plots = plot_results(results_dir)
    print(f"\n{len(mine) - len(failed)}/{len(wanted)} runs ok, {len(failed)} failed")
    for _, row in failed.iterrows():
        print(f"  failed: {row['run_id']}: {row['error_type']}: {row['error_message']}")
    print(f"results: {results_dir / RESULTS_FILE}\nplots:   {results_dir / 'plots'} ({len(plots)} files)")
    return len(failed)


@exit_on_user_error
def main() -> int:
    argv = sys.argv[1:]
    planned = plan_runs(SWEEP_CONFIG, argv, sweep=True)
    directories = prepare_results_dirs(planned)
    done = set().union(*(completed_run_ids(d) for d in directories))
    todo = [p for p in planned if p.config.results.rerun or run_id(p.config) not in done]
    print(f"sweep: {len(planned)} runs planned, {len(planned) - len(todo)} already ok, {len(todo)} to run", flush=True)
    prepare_vocabularies(todo)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    interrupted = False
    if todo:
        global _progress
        _progress = tqdm(total=len(planned), desc="sweep", unit="run", dynamic_ncols=True)
        try:
            launch_run()
        except KeyboardInterrupt:
            interrupted = True
            print("\nsweep interrupted: completed runs are kept; run the same command again to resume", flush=True)
        finally:
            _progress.close()
    failed = sum(report(d, planned) for d in directories)
    if interrupted:
        return EXIT_INTERRUPTED
    return 1 if failed else 0


if __name__ == "__main__":
    # Run the module's own `main`, not this `__main__` copy: parallel launchers then pickle the
    # job function by reference instead of by value (with its progress bar and lock).
    from bench.sweep import main as sweep_main

    sys.exit(sweep_main())
