"""The scaling sweep: `python -m bench.sweep languages=2,4,8,11`.

Every registered strategy (but the opt-in ones, `in_default_sweep = False`) times the command line's axes (comma-separated values, `range(...)`).
Every run is composed and validated before the first one starts; runs already recorded as ok in
`results.dir` are skipped (resume); the rest start in a seeded random order (`sweep.order_seed`,
recorded in `results.dir/sweeps.jsonl`), so drift of the machine spreads across strategies instead
of looking like an effect; each starts as its own process through `bench.launch`. At the end the
per-run files are consolidated into `results.parquet`, plotted and reported (`report.md`), and the sweep prints
what one more training language costs per strategy, from the same fits as the report.

Committed results come from one commit on a clean tree: into a directory under `results/` that git
does not ignore, a sweep refuses to start from a tree with uncommitted changes (unless
`results.allow_dirty=true`) or to add runs to rows measured at another commit.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from bench import PROJECT_ROOT
from bench.config import PlannedRun, RunConfig, plan_runs
from bench.config.compose import shuffled, sweep_order_seed
from bench.errors import BenchError, exit_on_user_error
from bench.launch import launch_all, results_lock
from bench.measure.calibration import calibrate
from bench.measure.timing import PhaseClock
from bench.measure.provenance import RESULTS_PATH, code_tree, cpu_model, git_commit, git_dirty, git_ignored
from bench.results.figures import plot_results
from bench.results.fit import usable_runs
from bench.results.markdown import write_report
from bench.results.schema import SUCCESS
from bench.results.store import RESULTS_FILE, SWEEPS_FILE, consolidate, ensure_writable_dir, read_runs
from bench.results.summary import cost_lines
from bench.evaluation.references import read_references, write_references
from bench.stages import reference_levels, warm_vocabularies

EXIT_INTERRUPTED = 130


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # SIGTERM behaves like Ctrl-C


def committed_results_policy(results_dir: Path, planned: list[PlannedRun]) -> None:
    """Refuse to mix commits or uncommitted code into results that will be committed."""
    inside = results_dir.resolve().is_relative_to((PROJECT_ROOT / RESULTS_PATH).resolve())
    if not inside or git_ignored(PROJECT_ROOT, results_dir) or all(p.config.results.allow_dirty for p in planned):
        return
    if git_dirty(PROJECT_ROOT):
        raise BenchError(f"{results_dir} is for committed results, and the tree has uncommitted changes: commit first, "
                         "or add results.allow_dirty=true (recorded in every row as git_dirty)")
    head, tree = git_commit(PROJECT_ROOT), code_tree(PROJECT_ROOT)
    rerun = all(p.config.results.rerun for p in planned)
    others = sorted({r.git_commit[:10] for r in read_runs(results_dir)
                     if r.status in SUCCESS and r.git_commit != head and (r.code_tree is None or r.code_tree != tree)})  # fmt: skip
    if others and not rerun:
        raise BenchError(f"{results_dir} holds runs measured at commit {', '.join(others)} with other code than this tree "
                         f"({head[:10]}): committed results come from one code tree (bench/, conf/, data/, pyproject.toml); "
                         "use a new results.dir or results.rerun=true")


def prepare_results_dirs(planned: list[PlannedRun]) -> list[Path]:
    dirs = sorted({Path(p.config.results.dir) for p in planned})
    for directory in dirs:
        ensure_writable_dir(directory)
        read_runs(directory)  # fails now, as one line, if the directory holds another schema version
        committed_results_policy(directory, [p for p in planned if Path(p.config.results.dir) == directory])
    return dirs


def record_order(results_dir: Path, order: list[RunConfig], seed: int, calibration: dict) -> None:
    """Append this sweep's launch order and machine calibration to results_dir/sweeps.jsonl."""
    entry = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git_commit": git_commit(PROJECT_ROOT),
             "code_tree": code_tree(PROJECT_ROOT), "git_dirty": git_dirty(PROJECT_ROOT), "hostname": socket.gethostname(), "cpu_model": cpu_model(),
             "calibration": calibration, "order_seed": seed,
             "order": [c.run_id for c in order if Path(c.results.dir) == results_dir]}  # fmt: skip
    with open(results_dir / SWEEPS_FILE, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def write_reference_levels(results_dir: Path, configs: list[RunConfig]) -> None:
    """Chance, lexical and zero-shot levels of the sweep's evaluation sets, once per directory."""
    evaluated = [c for c in configs if c.eval.enabled and c.mode == "train"]
    if evaluated:
        known = set(read_references(results_dir))
        levels = reference_levels(evaluated[0], skip=known)
        if levels:
            write_references(results_dir, levels)


def run_sweep(planned: list[PlannedRun], order_seed: int, show_progress: bool = True, clock: PhaseClock | None = None) -> bool:
    """Launch every planned run not already ok, in seeded random order; False if interrupted. Each phase's
    wall time goes to `clock` (calibration, reference levels, vocabularies, runs)."""
    clock = clock or PhaseClock()
    done = set().union(*({r.run_id for r in read_runs(d) if r.status in SUCCESS} for d in {Path(p.config.results.dir) for p in planned}))
    todo = [p.config for p in shuffled(planned, order_seed) if p.config.results.rerun or p.config.run_id not in done]
    print(f"sweep: {len(planned)} runs planned, {len(planned) - len(todo)} already ok, {len(todo)} to run", flush=True)
    if not todo:
        return True
    with clock.phase("calibration"):
        calibration = calibrate(todo[0].train.threads)
    print(f"machine: {cpu_model()}, {calibration_line(calibration)}", flush=True)
    if not calibration["stable"]:
        print(f"warning: the calibration's trials spread {calibration['matmul_spread']:.0%} (something else is running?): "
              "its seconds are not a stable unit", flush=True)  # fmt: skip
    for directory in sorted({Path(c.results.dir) for c in todo}):
        record_order(directory, todo, order_seed, calibration)
        with clock.phase("reference_levels"):
            write_reference_levels(directory, [c for c in todo if Path(c.results.dir) == directory])
    with clock.phase("vocabularies"):
        warm_vocabularies(todo)
    progress = tqdm(total=len(todo), desc="sweep", unit="run", dynamic_ncols=True, disable=not show_progress)
    started = {"t": time.perf_counter()}

    def on_done(cfg: RunConfig, status: str) -> None:
        progress.update(1)
        progress.write(f"{cfg.run_id}: {status} ({time.perf_counter() - started['t']:.0f}s into the sweep)")

    try:
        with clock.phase("runs"):
            launch_all(todo, on_done)
    except KeyboardInterrupt:
        print("\nsweep interrupted: completed runs are kept; run the same command again to resume", flush=True)
        return False
    finally:
        progress.close()
    with clock.phase("calibration_end"):
        clock.notes.update(drift_fields(calibration, todo[0].train.threads))
    return True


def calibration_line(calibration: dict) -> str:
    return (f"{calibration['matmul_gflops']} GFLOP/s fp32 matmul (trials spread {calibration['matmul_spread']:.0%}), "
            f"{calibration['copy_gb_per_s']} GB/s copy ({calibration['threads']} threads)")


def drift_fields(start: dict, threads: int) -> dict:
    """Calibrate again at the end: a machine that got slower or faster during the sweep says so in sweeps.jsonl."""
    end = calibrate(threads)
    drift = end["matmul_gflops"] / start["matmul_gflops"] - 1
    print(f"machine at the end: {calibration_line(end)}; drift {drift:+.0%} since the start", flush=True)
    return {"calibration_end": end, "calibration_drift": round(drift, 3)}


def record_finish(directories: list[Path], clock: PhaseClock) -> None:
    """The sweep's closing entry in sweeps.jsonl: the end calibration and where its wall time went
    (process start-up, planning, calibrations, reference levels, vocabularies, runs, report and plots)."""
    entry = {"finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **clock.fields()}
    for directory in directories:
        with open(directory / SWEEPS_FILE, "a") as handle:
            handle.write(json.dumps(entry) + "\n")


def report(results_dir: Path, planned: list[PlannedRun]) -> int:
    """Consolidate, plot, write report.md, and print where everything is and what one more language costs;
    the number of failed runs of this sweep."""
    table = consolidate(results_dir)
    wanted = {p.config.run_id for p in planned if Path(p.config.results.dir) == results_dir}
    mine = table[table["run_id"].isin(wanted)]
    failed = mine[~mine["status"].isin(SUCCESS)]
    plots = plot_results(results_dir)
    written = write_report(results_dir)  # the figures are drawn already: it only writes the Markdown
    print(f"\n{len(mine) - len(failed)}/{len(wanted)} runs ok, {len(failed)} failed")
    for _, row in failed.iterrows():
        print(f"  failed: {row['run_id']}: {row['error_type']}: {row['error_message']}")
    print(f"results: {results_dir / RESULTS_FILE}\nplots:   {results_dir / 'plots'} ({len(plots)} files)")
    print(f"report:  {written}")
    for line in cost_lines(usable_runs(table)):
        print(line)
    return len(failed)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    clock = PhaseClock()
    with clock.phase("planning"):
        planned = plan_runs("config", argv, sweep=True)
        directories = prepare_results_dirs(planned)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    with ExitStack() as locks:
        for directory in directories:
            locks.enter_context(results_lock(directory))
        completed = run_sweep(planned, sweep_order_seed("config", argv), clock=clock)
        with clock.phase("report"):
            failed = sum(report(d, planned) for d in directories)
        if completed and "runs" in clock.phases_s:
            record_finish(directories, clock)
    if not completed:
        return EXIT_INTERRUPTED
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
