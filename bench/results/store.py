"""Where results live on disk: one parquet file per run, written atomically, and a consolidated table.

Layout of a results directory:
    runs/<run_id>.parquet   one row each, written to a temporary name then renamed
    results.parquet         all rows, rebuilt from runs/ (never appended to in place)
    per_setting.parquet     long-format evaluation table (dataset, setting, languages, metrics)
    per_query/<run_id>.parquet  every query's average precision per set and setting (results.per_query)
    plots/                  scaling curves
Because the consolidated files are always rebuilt from the per-run files, parallel
launchers never race on one file and an interrupted sweep never leaves a half-written table.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.errors import BenchError
from bench.results.schema import SCHEMA_VERSION, RunRecord, records_to_table, table_to_records

RUNS_DIR = "runs"
EVAL_DIR = "eval"
PER_QUERY_DIR = "per_query"
RESULTS_FILE = "results.parquet"
PER_SETTING_FILE = "per_setting.parquet"
SWEEPS_FILE = "sweeps.jsonl"  # one line per sweep start (launch order, commit, calibration) and per sweep end (drift)


def ensure_writable_dir(path: Path) -> Path:
    """Create the directory if needed and prove it is writable, or fail with one line."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise BenchError(f"results.dir {path} is not writable ({exc.strerror or exc})") from None
    return path


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write parquet to a temporary file in the same directory, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_run(results_dir: Path, record: RunRecord, per_setting: pd.DataFrame | None = None,
              per_query: pd.DataFrame | None = None) -> Path:
    """Persist one run's row (and its per-setting and per-query evaluation tables, if any); the row last,
    so a row that says ok always has its tables beside it."""
    if per_query is not None and len(per_query):
        table = pa.Table.from_pandas(per_query.assign(run_id=record.run_id), preserve_index=False)
        write_table_atomic(table, results_dir / PER_QUERY_DIR / f"{record.run_id}.parquet")
    if per_setting is not None and len(per_setting):
        table = pa.Table.from_pandas(per_setting.assign(run_id=record.run_id), preserve_index=False)
        write_table_atomic(table, results_dir / EVAL_DIR / f"{record.run_id}.parquet")
    path = results_dir / RUNS_DIR / f"{record.run_id}.parquet"
    write_table_atomic(records_to_table([record]), path)
    return path


def notice(message: str) -> None:
    """One clean line on stderr (not a Python warning, which would print a source line too)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def read_run_file(path: Path) -> list[RunRecord]:
    table = pq.read_table(path)
    version = (table.schema.metadata or {}).get(b"schema_version", b"?").decode()
    if version != str(SCHEMA_VERSION):
        raise BenchError(
            f"{path} was written with results schema version {version}, this code writes {SCHEMA_VERSION}; "
            "use a new results.dir"
        )
    return table_to_records(table)


def read_run(results_dir: Path, run_id: str) -> RunRecord | None:
    """One run's row, or None if it has none (yet) or its file is unreadable."""
    path = results_dir / RUNS_DIR / f"{run_id}.parquet"
    if not path.is_file():
        return None
    try:
        records = read_run_file(path)
    except Exception as exc:
        notice(f"unreadable run file {path} ({type(exc).__name__}: {first_line(exc)})")
        return None
    return records[0] if records else None


def read_runs(results_dir: Path) -> list[RunRecord]:
    """All per-run rows; unreadable files are reported and skipped, never fatal."""
    records: list[RunRecord] = []
    for path in sorted((results_dir / RUNS_DIR).glob("*.parquet")):
        try:
            records.extend(read_run_file(path))
        except BenchError:
            raise
        except Exception as exc:  # a torn or foreign file must not sink the whole sweep
            notice(f"skipping unreadable run file {path} ({type(exc).__name__}: {first_line(exc)}); its run counts as not done")
    return records


def consolidate(results_dir: Path) -> pd.DataFrame:
    """Rebuild results.parquet (and per_setting.parquet) from the per-run files."""
    records = read_runs(results_dir)
    write_table_atomic(records_to_table(records), results_dir / RESULTS_FILE)
    frames = []
    for path in sorted((results_dir / EVAL_DIR).glob("*.parquet")):
        try:
            frames.append(pq.read_table(path).to_pandas())
        except Exception as exc:
            notice(f"skipping unreadable evaluation file {path} ({type(exc).__name__}: {first_line(exc)})")
    if frames:
        per_setting = pd.concat(frames, ignore_index=True)
        write_table_atomic(pa.Table.from_pandas(per_setting, preserve_index=False), results_dir / PER_SETTING_FILE)
    return load_results(results_dir)


def read_sweeps(results_dir: Path) -> list[dict]:
    """The entries of results_dir/sweeps.jsonl, oldest first (none if the directory has no sweeps)."""
    path = Path(results_dir) / SWEEPS_FILE
    if not path.is_file():
        return []
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchError(f"{path} is unreadable ({type(exc).__name__}: {exc})") from None


def load_results(results_dir: Path) -> pd.DataFrame:
    """The consolidated table as a DataFrame (the input of plots, reports and checks)."""
    path = Path(results_dir) / RESULTS_FILE
    if not path.is_file():
        raise BenchError(f"no {RESULTS_FILE} in {results_dir}; run a sweep into it first")
    try:
        return pq.read_table(path).to_pandas()
    except Exception as exc:
        raise BenchError(f"{path} is unreadable ({type(exc).__name__}: {exc})") from None
