"""The memory-regression check: `python -m bench.check [overrides] [--baseline PATH] [--update]`.

A fixed grid, then a comparison. The grid is `conf/check.yaml` (every registered strategy at two
language counts, tiny model, eval off, 4 steps), run like any sweep (`bench.sweep.run_sweep`: each
run its own process, so its host RSS is its own) into a temporary directory; the rows are compared
with the committed baseline by `bench.results.baseline`: tensor peaks and their breakdown within
±0.5% (deterministic on CPU), host RSS within +25%, each strategy's peak over monolingual's within
±2%, a changed configuration hash fails, times are reported only.

Exit 0 when everything holds, 1 naming the offending rows, 2 for bad input (a missing or malformed
baseline, a bad override). Overrides narrow or change the grid as in a sweep (`strategy=hybrid
languages=2`, `train.batch_size=24`). After an intended change in memory (a new objective, a model
change, a torch upgrade), `--update` rewrites this device type's rows, and the diff goes in review;
it also rewrites the baseline's provenance sidecar (`<baseline>.provenance.json`: commit, tree state, CPU
and its flags, calibration, the exact command) for the machine of that update (each device section keeps
its own commit and device name).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

from bench import PROJECT_ROOT
from bench.config import PlannedRun, RunConfig, compose_config, plan_runs
from bench.config.compose import sweep_order_seed
from bench.config.run_config import build
from bench.errors import ConfigError, exit_on_user_error
from bench.measure.evidence import command_line, evidence_header
from bench.measure.sidecar import write_provenance
from bench.results.baseline import CheckConfig, compare, format_table, load_baseline, updated_baseline, write_baseline
from bench.results.schema import RunRecord
from bench.results.store import read_runs
from bench.sweep import run_sweep

CHECK_CONFIG = "check"


def check_key(cfg: RunConfig) -> str:
    """A configuration's name in the baseline: stable when unrelated defaults change, unlike its hash."""
    return f"{cfg.strategy.name}-L{len(cfg.languages)}"


# ---------------------------------------------------------------- measuring


def measure(planned: list[PlannedRun], order_seed: int) -> dict[str, RunRecord | str]:
    """Run the grid like a sweep (each run its own process); each configuration's row, or why there is none."""
    run_sweep(planned, order_seed, show_progress=False)
    results_dir = Path(planned[0].config.results.dir)
    rows = {r.run_id: r for r in read_runs(results_dir)}
    measured: dict[str, RunRecord | str] = {}
    for p in planned:
        row = rows.get(p.config.run_id)
        if row is None:
            log = results_dir / "logs" / f"{p.config.run_id}.out"
            lines = (log.read_text().strip().splitlines() if log.is_file() else []) or ["(no output)"]
            measured[check_key(p.config)] = f"no row: {lines[-1]}"
        elif row.status != "ok":
            measured[check_key(p.config)] = f"{row.status}: {row.error_type}: {row.error_message}"
        else:
            measured[check_key(p.config)] = row
    return measured


# ---------------------------------------------------------------- command line


def read_check_config(argv: list[str]) -> CheckConfig:
    section = compose_config(CHECK_CONFIG, [a for a in argv if a.startswith("check.")]).get("check")
    return build(CheckConfig, OmegaConf.to_container(section, resolve=True), "check")


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/check.yaml (sweep syntax: strategy=hybrid,mbert)")
    parser.add_argument("--baseline", type=Path, help="baseline file (default: check.baseline in conf/check.yaml)")
    parser.add_argument("--update", action="store_true", help="rewrite this device type's baseline rows from this check")
    parser.add_argument("--results-dir", type=Path, help="keep the runs' rows and logs here (default: a temporary directory)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if any(o.split("=", 1)[0].lstrip("+~") == "results.dir" for o in args.overrides):
        raise ConfigError("results.dir is chosen by bench.check; use --results-dir")

    check = read_check_config(args.overrides)
    grid = [o for o in args.overrides if not o.startswith("check.")]
    tmp = tempfile.TemporaryDirectory(prefix="bench-check-")
    results_dir = (args.results_dir or Path(tmp.name)).resolve()
    planned = plan_runs(CHECK_CONFIG, [*grid, f"results.dir={results_dir}"], sweep=True)
    device_types = {p.config.device for p in planned}
    if len(device_types) != 1 or "auto" in device_types:
        raise ConfigError(f"device must be one explicit type for every run of the check (cpu or cuda), got {sorted(device_types)}")
    (device_type,) = device_types
    keys = [check_key(p.config) for p in planned]
    if len(set(keys)) != len(keys):
        raise ConfigError("the check's configurations must differ in strategy or language count (one baseline row each)")
    path = args.baseline or PROJECT_ROOT / check.baseline
    baseline = load_baseline(path, device_type, required=not args.update)  # bad input fails before any run

    # An update's provenance is measured before its runs, on their threads, as a sweep calibrates.
    command = command_line(sys.argv[1:] if argv is None else argv, program="python -m bench.check")
    header = evidence_header(command, planned[0].config.train.threads) if args.update else None
    started = time.perf_counter()
    with tmp:
        measured = measure(planned, sweep_order_seed(CHECK_CONFIG, grid))
    base_runs = baseline["devices"].get(device_type, {}).get("runs", {})
    rows = compare(base_runs, measured, check, gate=not args.update)
    print(format_table(rows))
    print(f"\n{len(measured)} runs on {device_type} in {time.perf_counter() - started:.0f}s; baseline {path}")

    failures = sorted({r.config for r in rows if r.failed})
    if args.update:
        broken = [k for k, v in measured.items() if isinstance(v, str)]
        if broken:
            print(f"baseline NOT updated: run(s) failed: {', '.join(broken)}")
            return 1
        commands = {check_key(p.config): f"python -m bench.check {' '.join(o for o in p.overrides if not o.startswith('results.dir='))}"
                    for p in planned}  # fmt: skip
        write_baseline(path, updated_baseline(baseline, device_type, measured, commands))
        write_provenance(path, header)
        print(f"baseline updated: {path} and its provenance ({device_type}: {', '.join(measured)})")
        return 0
    if failures:
        offending = [f"{r.config} {r.metric}" for r in rows if r.failed]
        print(f"memory check FAILED for {', '.join(failures)}: {'; '.join(offending)}")
        return 1
    print("memory check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
