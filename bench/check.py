"""The memory-regression check: `python -m bench.check [overrides] [--baseline PATH] [--update]`.

A fixed grid, then a comparison. The grid is `conf/check.yaml` (every registered strategy at two
language counts, tiny model, eval off, 4 steps), run like any sweep (`bench.sweep.run_sweep`: each
run its own process, so its host RSS is its own) into a temporary directory; the rows are compared
with a committed baseline (`results/baselines/memory-check.json`, one section per device type, one
entry per configuration). Which figures are gated, and how, is the metric catalogue's `gate`:

* `peak_tensor_bytes` and its breakdown (params, grads, optimizer, activations) are deterministic on
  CPU: gated tightly, in either direction (a drop can mean the tracker stopped counting something);
* `peak_rss_bytes` (host) is noisier: gated loosely, increases only;
* each strategy's tensor peak over monolingual's at the same language count is measured within one
  check, so it holds across machines and library versions where absolute bytes may not: gated;
* wall time and median step time are reported, never gated;
* a configuration whose hash differs from its baseline row's fails: the figures would not be comparable.

Exit 0 when everything holds, 1 naming the offending rows, 2 for bad input (a missing or malformed
baseline, a bad override). Overrides narrow or change the grid as in a sweep (`strategy=hybrid
languages=2`, `train.batch_size=24`). After an intended change in memory (a new objective, a model
change, a torch upgrade), `--update` rewrites this device type's rows, and the diff goes in review.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import OmegaConf

from bench import PROJECT_ROOT
from bench.config import PlannedRun, RunConfig, compose_config, plan_runs
from bench.config.compose import sweep_order_seed
from bench.config.run_config import build
from bench.errors import BenchError, ConfigError, exit_on_user_error
from bench.results.schema import RunRecord, metrics_where
from bench.results.store import read_runs
from bench.sweep import run_sweep

CHECK_CONFIG = "check"
BASELINE_FORMAT = "hybrid-batch-bench memory baseline"
BASELINE_VERSION = 1
TENSOR_METRICS = tuple(m.column for m in metrics_where(gate="tensor"))
(RSS_METRIC,) = (m.column for m in metrics_where(gate="rss"))
RATIO_METRIC = "tensor_peak_vs_monolingual"  # derived here: a strategy's peak over monolingual's, same L
TIME_METRICS = tuple(m.column for m in metrics_where(gate="info"))  # reported, never gated
RECORDED = (*TENSOR_METRICS, RSS_METRIC, *TIME_METRICS, "tracked_step")


@dataclass(frozen=True)
class CheckConfig:
    """The `check:` section of conf/check.yaml."""

    baseline: str
    tensor_tolerance: float
    rss_tolerance: float
    ratio_tolerance: float

    def __post_init__(self) -> None:
        for key in ("tensor_tolerance", "rss_tolerance", "ratio_tolerance"):
            if not isinstance(getattr(self, key), (int, float)) or getattr(self, key) < 0:
                raise ConfigError(f"check.{key} must be a non-negative number, got {getattr(self, key)!r}")


def check_key(cfg: RunConfig) -> str:
    """A configuration's name in the baseline: stable when unrelated defaults change, unlike its hash."""
    return f"{cfg.strategy.name}-L{len(cfg.languages)}"


# ---------------------------------------------------------------- baseline file


def load_baseline(path: Path, device_type: str, required: bool = True) -> dict:
    """The whole baseline file; with `required`, it must exist and hold a section for `device_type`."""
    if not path.is_file():
        if not required:
            return {"format": BASELINE_FORMAT, "version": BASELINE_VERSION, "devices": {}}
        raise BenchError(f"baseline {path} not found; record one with `python -m bench.check --update`")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"baseline {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT or data.get("version") != BASELINE_VERSION:
        raise BenchError(f"baseline {path} is not a version-{BASELINE_VERSION} {BASELINE_FORMAT!r} file")
    devices = data.get("devices")
    if not isinstance(devices, dict) or not all(_valid_section(s) for s in devices.values()):
        raise BenchError(f"baseline {path} is malformed: 'devices' must map device types to {{'runs': {{name: {{metric: number}}}}}}")
    if required and device_type not in devices:
        have = ", ".join(sorted(devices)) or "none"
        raise BenchError(f"baseline {path} has no {device_type} section (it has: {have}); record one with --update on a {device_type} machine")
    return data


def _valid_section(section) -> bool:
    runs = section.get("runs") if isinstance(section, dict) else None
    return isinstance(runs, dict) and all(
        isinstance(row, dict) and all(isinstance(row.get(m), (int, float)) for m in TENSOR_METRICS) for row in runs.values()
    )


def updated_baseline(data: dict, device_type: str, measured: dict[str, RunRecord], commands: dict[str, str]) -> dict:
    """The file with this device type's rows replaced by what was just measured (other rows kept)."""
    first = next(iter(measured.values()))
    section = data["devices"].get(device_type, {"runs": {}})
    runs = dict(section["runs"])
    for key, record in measured.items():
        values = {m: getattr(record, m) for m in RECORDED}
        values.update({m: round(values[m], 3) for m in TIME_METRICS if values[m] is not None})
        runs[key] = {"config_hash": record.config_hash, "command": commands[key], **values}
    data["devices"][device_type] = {
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": first.git_commit,
        "torch_version": first.torch_version,
        "device_name": first.device_name,
        "cpu_model": first.cpu_model,
        "runs": dict(sorted(runs.items())),
    }
    return data


def write_baseline(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")  # one metric per line: readable diffs
    tmp.replace(path)


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


# ---------------------------------------------------------------- comparing


@dataclass(frozen=True)
class Comparison:
    """One metric of one configuration against its baseline; `tolerance` None means reported only."""

    config: str
    metric: str
    baseline: float | None
    now: float | None
    tolerance: float | None = None
    two_sided: bool = True
    note: str = ""

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.now is None:
            return None
        if self.baseline == 0:
            return 0.0 if self.now == 0 else float("inf")
        return (self.now - self.baseline) / self.baseline

    @property
    def failed(self) -> bool:
        if self.tolerance is None:
            return False
        if self.change is None:
            return True  # a gated figure that is missing on either side
        return (abs(self.change) if self.two_sided else self.change) > self.tolerance

    @property
    def verdict(self) -> str:
        if self.tolerance is None:
            return "info"
        return "FAIL" if self.failed else "ok"


def compare(baseline_runs: dict, measured: dict[str, RunRecord | str], check: CheckConfig, gate: bool = True) -> list[Comparison]:
    """Every gated and reported figure of every measured configuration, in table order.

    A failed run, or one without a baseline row, fails; `gate=False` (for --update) only reports.
    """
    tolerance = lambda t: t if gate else None  # noqa: E731
    rows: list[Comparison] = []
    for key, record in measured.items():
        if isinstance(record, str):
            rows.append(Comparison(key, "run", None, None, tolerance(0.0), note=record))
            continue
        base = baseline_runs.get(key, {})
        if not base:
            note = "no baseline row; record it with --update"
        elif base.get("config_hash") != record.config_hash:
            note = "configuration differs from the baseline's"
            rows.append(Comparison(key, "config_hash", None, None, tolerance(0.0), note=note))
        else:
            note = ""
        for metric in TENSOR_METRICS:
            rows.append(Comparison(key, metric, base.get(metric), getattr(record, metric), tolerance(check.tensor_tolerance), note=note))
        rows.append(Comparison(key, RSS_METRIC, base.get(RSS_METRIC), record.peak_rss_bytes, tolerance(check.rss_tolerance), False))
        ratio_now, ratio_base = _ratio(measured, key), _ratio(baseline_runs, key)
        if ratio_now is not None or ratio_base is not None:
            rows.append(Comparison(key, RATIO_METRIC, ratio_base, ratio_now, tolerance(check.ratio_tolerance)))
        rows += [Comparison(key, m, base.get(m), getattr(record, m)) for m in TIME_METRICS]
    return rows


def _ratio(runs: dict, key: str) -> float | None:
    """This configuration's tensor peak over monolingual's at the same language count (None for monolingual)."""
    strategy, languages = key.rsplit("-L", 1)
    mono = runs.get(f"monolingual-L{languages}")
    if strategy == "monolingual" or mono is None or key not in runs:
        return None
    peak, mono_peak = (_get(runs[key], "peak_tensor_bytes"), _get(mono, "peak_tensor_bytes"))
    return peak / mono_peak if peak and mono_peak else None


def _get(row, metric: str):
    if isinstance(row, str):
        return None
    return row.get(metric) if isinstance(row, dict) else getattr(row, metric)


def format_table(rows: list[Comparison]) -> str:
    def value(metric: str, x: float | None) -> str:
        if x is None:
            return "-"
        if metric.endswith("_bytes"):
            return f"{x:,.0f}"
        return f"{x:.4f}" if metric == RATIO_METRIC else f"{x:.2f}"

    def change(row: Comparison) -> str:
        c = row.change
        return "-" if c is None else ("new" if c == float("inf") else f"{c:+.2%}")

    header = ("config", "metric", "baseline", "now", "change", "verdict")
    cells = [header] + [
        (r.config, r.metric, value(r.metric, r.baseline), value(r.metric, r.now), change(r), r.verdict + (f"  {r.note}" if r.note else ""))
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    aligns = ["<", "<", ">", ">", ">"]
    return "\n".join("  ".join(f"{c[i]:{a}{w}}" for i, (a, w) in enumerate(zip(aligns, widths))) + "  " + c[5] for c in cells)


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
        print(f"baseline updated: {path} ({device_type}: {', '.join(measured)})")
        return 0
    if failures:
        offending = [f"{r.config} {r.metric}" for r in rows if r.failed]
        print(f"memory check FAILED for {', '.join(failures)}: {'; '.join(offending)}")
        return 1
    print("memory check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
