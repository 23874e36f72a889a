"""The memory baseline and the comparison against it (what `bench.check` gates).

The baseline (`results/baselines/memory-check.json`) has one section per device type and one entry
per configuration of the check grid. Which figures are gated, and how, is the metric catalogue's
`gate`: tensor figures within a tolerance either way, host RSS within a tolerance upwards, each
strategy's tensor peak over monolingual's at the same language count (measured in one check, so it
holds across machines), and times reported, never gated. A configuration whose hash differs from
its baseline row fails: its figures would not be comparable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.errors import BenchError, ConfigError
from bench.results.schema import RunRecord, metrics_where

BASELINE_FORMAT = "hybrid-batch-bench memory baseline"
BASELINE_VERSION = 1
TENSOR_METRICS = tuple(m.column for m in metrics_where(gate="tensor"))
(RSS_METRIC,) = (m.column for m in metrics_where(gate="rss"))
RATIO_PREFIX = "tensor_peak_vs_"  # derived here: a strategy's peak over the reference strategy's, same L
TIME_METRICS = tuple(m.column for m in metrics_where(gate="info"))  # reported, never gated
RECORDED = (*TENSOR_METRICS, RSS_METRIC, *TIME_METRICS, "tracked_step")


@dataclass(frozen=True)
class CheckConfig:
    """The `check:` section of conf/check.yaml."""

    baseline: str
    tensor_tolerance: float
    rss_tolerance: float
    ratio_tolerance: float
    reference_strategy: str  # the strategy every other's tensor peak is divided by (same L, same run)

    @property
    def ratio_metric(self) -> str:
        return RATIO_PREFIX + self.reference_strategy

    def __post_init__(self) -> None:
        for key in ("tensor_tolerance", "rss_tolerance", "ratio_tolerance"):
            if not isinstance(getattr(self, key), (int, float)) or getattr(self, key) < 0:
                raise ConfigError(f"check.{key} must be a non-negative number, got {getattr(self, key)!r}")


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
        reference = check.reference_strategy
        ratio_now, ratio_base = _ratio(measured, key, reference), _ratio(baseline_runs, key, reference)
        if ratio_now is not None or ratio_base is not None:
            rows.append(Comparison(key, check.ratio_metric, ratio_base, ratio_now, tolerance(check.ratio_tolerance)))
        rows += [Comparison(key, m, base.get(m), getattr(record, m)) for m in TIME_METRICS]
    return rows


def _ratio(runs: dict, key: str, reference: str) -> float | None:
    """This configuration's tensor peak over the reference strategy's at the same language count (None for the reference)."""
    strategy, languages = key.rsplit("-L", 1)
    base = runs.get(f"{reference}-L{languages}")
    if strategy == reference or base is None or key not in runs:
        return None
    peak, base_peak = (_get(runs[key], "peak_tensor_bytes"), _get(base, "peak_tensor_bytes"))
    return peak / base_peak if peak and base_peak else None


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
        return f"{x:.4f}" if metric.startswith(RATIO_PREFIX) else f"{x:.2f}"

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
