"""Every evidence file under results/ says where its numbers came from.

The rule (what counts as evidence, and what complete provenance is):

1. Every file under results/ that git tracks or would track is evidence, except figures (.png, .svg,
   .pdf: drawings of a table that carries the provenance), hidden files (a sweep's .lock) and
   provenance sidecars themselves (`<file>.provenance.json`).
2. Evidence carries a sidecar `<file>.provenance.json` (bench.measure.sidecar, written by
   bench.measure.evidence) holding every field of PROVENANCE_FIELDS: git_commit (a full hash), git_dirty
   (false: a dirty tree's numbers cannot be reproduced from the commit they name), code_tree, cpu_model,
   cpu_flags, calibration (fp32 matmul GFLOP/s, the sweep's unit), command, created_at.
3. Except in a sweep directory (one holding sweeps.jsonl or runs/), whose evidence is its rows, column by
   column: results.parquet (else runs/*.parquet). Each row carries git_commit, git_dirty (false),
   code_tree, cpu_model and created_at, bf16_support where the row ran (not status "predicted"), its
   command (the row's `command`, or configs/<run_id>.json, the exact config a sweep ran), and the
   calibration of a sweep started at the row's commit (its entry in sweeps.jsonl). Covered by those rows
   are the files a sweep and its readers write from them: results.parquet, sweeps.jsonl,
   references.json, per_setting.parquet, *_fit.parquet, report.md, STATUS.md, verdict*.parquet,
   verdict*.md, and runs/, eval/, per_query/, configs/ files named after a row's run_id. Any other file
   in a sweep directory follows rule 2.

Nothing is back-filled: a file measured before this rule is named here until its benchmark is run again.
"""

from __future__ import annotations

import json
import subprocess
from fnmatch import fnmatch
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from bench import PROJECT_ROOT
from bench.measure.sidecar import is_sidecar, provenance_gaps, read_provenance, sidecar_path

FIGURES = (".png", ".svg", ".pdf")
SWEEP_FILES = ("results.parquet", "sweeps.jsonl", "references.json", "per_setting.parquet", "*_fit.parquet",
               "report.md", "STATUS.md", "verdict*.parquet", "verdict*.md")  # fmt: skip
RUN_FILES = ("runs", "eval", "per_query", "configs")  # a run's own files, named after its run_id
ROW_FIELDS = ("git_commit", "git_dirty", "code_tree", "cpu_model", "created_at")
NO_COMMAND = "no command (neither the row's command nor configs/<run_id>.json)"


def is_evidence(path: Path) -> bool:
    return not (path.suffix in FIGURES or path.name.startswith(".") or is_sidecar(path))


def sweep_dir(path: Path, root: Path) -> Path | None:
    """The sweep directory `path` lies in: the nearest ancestor, `root` or below it, with sweeps.jsonl or runs/."""
    for parent in path.parents:
        if not parent.is_relative_to(root):
            return None
        if (parent / "sweeps.jsonl").is_file() or (parent / "runs").is_dir():
            return parent
    return None


def covered_by_rows(path: Path, sweep: Path) -> bool:
    relative = path.relative_to(sweep)
    if len(relative.parts) == 1:
        return any(fnmatch(path.name, pattern) for pattern in SWEEP_FILES)
    return len(relative.parts) == 2 and relative.parts[0] in RUN_FILES


def sidecar_problems(path: Path) -> list[str]:
    record = read_provenance(path)
    if record is None:
        return [f"no provenance sidecar {sidecar_path(path).name}"]
    return provenance_gaps(record)


def read_rows(sweep: Path) -> pd.DataFrame:
    """The directory's rows, only the columns provenance needs (a column its schema lacks is absent)."""
    results = sweep / "results.parquet"
    files = [results] if results.is_file() else sorted((sweep / "runs").glob("*.parquet"))
    wanted = ("run_id", "status", "command", "bf16_support", *ROW_FIELDS)
    frames = [pd.read_parquet(f, columns=[c for c in wanted if c in pq.read_schema(f).names]) for f in files]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"run_id": []})


def calibrated_commits(sweep: Path) -> set[str]:
    """Commits at which a sweep into this directory started with a calibration (its sweeps.jsonl)."""
    path = sweep / "sweeps.jsonl"
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    starts = [e for e in entries if "started_at" in e]  # the closing entries hold the end calibration only
    calibrated = [e for e in starts if isinstance((e.get("calibration") or {}).get("matmul_gflops"), (int, float))]
    return {e.get("git_commit") for e in calibrated}


def row_gaps(rows: pd.DataFrame, sweep: Path) -> dict[str, pd.Series]:
    """Each kind of gap, as a mask over the rows (a missing column is a gap in every row)."""
    def column(name: str, default) -> pd.Series:
        return rows[name] if name in rows else pd.Series(default, index=rows.index, dtype=object)

    gaps = {f"no {field}": column(field, None).isna() for field in ROW_FIELDS}
    gaps["no bf16_support"] = column("bf16_support", None).isna() & column("status", "ok").ne("predicted")
    gaps["git_dirty: true"] = column("git_dirty", False).eq(True)
    has_config = rows["run_id"].map(lambda run_id: (sweep / "configs" / f"{run_id}.json").is_file()).astype(bool)
    gaps[NO_COMMAND] = column("command", None).isna() & ~has_config
    gaps["no calibration (no sweeps.jsonl entry started at the row's commit)"] = ~column("git_commit", None).isin(
        calibrated_commits(sweep))
    return gaps


def row_problems(rows: pd.DataFrame, sweep: Path) -> list[str]:
    """What the sweep directory's rows lack, one line per kind of gap with its number of rows."""
    gaps = row_gaps(rows, sweep)
    return [f"{int(mask.sum())} of {len(rows)} rows: {gap}" for gap, mask in gaps.items() if mask.any()]


def covered_problems(path: Path, sweep: Path, run_ids: set[str]) -> list[str]:
    """A file covered by its sweep's rows: a run's own file must name a run that has a row."""
    if path.parent == sweep or path.stem in run_ids:
        return []
    return [f"no row {path.stem!r} in its sweep's rows (python -m bench.report rebuilds results.parquet)"]


def evidence_problems(root: Path, files: list[Path] | None = None) -> dict[str, list[str]]:
    """Every evidence file, or sweep directory, under `root` without complete provenance, and what it lacks
    (names relative to `root`, a sweep directory's with a trailing /). `files`: those to judge (default: all)."""
    root = root.resolve()
    files = sorted(p.resolve() for p in (root.rglob("*") if files is None else files) if p.is_file())
    sweeps = {s for s in (sweep_dir(p, root) for p in files) if s is not None}
    rows = {sweep: read_rows(sweep) for sweep in sweeps}
    problems = {f"{sweep.relative_to(root).as_posix()}/": row_problems(rows[sweep], sweep) for sweep in sweeps}
    for path in filter(is_evidence, files):
        sweep = sweep_dir(path, root)
        if sweep is not None and covered_by_rows(path, sweep):
            found = covered_problems(path, sweep, set(rows[sweep]["run_id"]))
        else:
            found = sidecar_problems(path)
        problems[path.relative_to(root).as_posix()] = found
    return {name: found for name, found in problems.items() if found}


def committed_results() -> list[Path]:
    """results/'s files that git tracks or would track (not ignored scratch like results/latest/)."""
    command = ["git", "-C", str(PROJECT_ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "-z"]
    command += ["--", "results"]
    listing = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return [PROJECT_ROOT / name for name in listing.split("\0") if name]


# Measured before the rule and not yet re-run (each entry: why, and the command that re-runs it). Visible on purpose:
# the next test fails once an entry has its provenance, so the list only shrinks.
AWAITING_RERUN = {
    "quality/": "the 20-step mE5-small pilot of alpha-frontier (48 runs, about 70 min): "
                "rm -r results/quality && python -m bench.sweep +experiment=quality",
    "me5-options/": "three single mE5-small runs by bench.run (no sweep calibration): re-run as a sweep with the "
                    "commands in docs/design.md",
    "baselines/memory-check.json": "the memory gate's baseline: re-recording it (python -m bench.check --update) "
                                   "moves the gate itself, so it waits for a change that means to",
    "default/": "the fixed-vocabulary sweep behind the README's default block (40 runs): rm -r results/default && "
                "python -m bench.sweep 'strategy=glob(*)' languages=2,4,8,11 seed=0,1 results.dir=results/default",
    "language-tax/": "python tests/benchmarks/language_tax.py, then git rm results/language-tax/provenance.json "
                     "(its numbers are registered in docs/numbers.yaml: the prose follows the new files)",
    "benchmarks/mbert_rss.txt": "python tests/benchmarks/mbert_rss.py --steps 220 --out results/benchmarks/mbert_rss.txt",
    "benchmarks/bf16_ab.json": "python tests/benchmarks/bf16_ab.py --rounds 10 --steps 2 --texts 384 --out "
                               "results/benchmarks/bf16_ab.json --parity-out results/benchmarks/bf16_eval_parity.json",
    "benchmarks/bf16_eval_parity.json": "written by the same command as bf16_ab.json",
}


def awaiting(name: str) -> bool:
    return any(name == entry or (entry.endswith("/") and name.startswith(entry)) for entry in AWAITING_RERUN)


def test_every_committed_evidence_file_carries_its_provenance():
    problems = {name: found for name, found in evidence_problems(PROJECT_ROOT / "results", committed_results()).items()
                if not awaiting(name)}
    listed = "\n".join(f"  results/{name}: {'; '.join(found)}" for name, found in sorted(problems.items()))
    assert not problems, f"evidence without complete provenance (re-run its benchmark from a clean commit):\n{listed}"


def test_every_file_awaiting_a_rerun_still_lacks_its_provenance():
    """An entry of AWAITING_RERUN whose files all carry provenance now is stale: take it off the list."""
    problems = evidence_problems(PROJECT_ROOT / "results", committed_results())
    stale = [entry for entry in AWAITING_RERUN if not any(awaiting(name) and name.startswith(entry) for name in problems)]
    assert not stale, f"these now carry their provenance; remove them from AWAITING_RERUN: {stale}"


# ---------------------------------------------------------------- the rule itself, on planted trees

COMMIT = "a" * 40
COMPLETE = {"git_commit": COMMIT, "git_dirty": False, "code_tree": "0123456789abcdef", "cpu_model": "Some CPU",
            "cpu_flags": ["avx2"], "calibration": {"matmul_gflops": 150.0}, "command": "python x.py --out y",
            "created_at": "2026-12-03T10:00:00+00:00"}  # fmt: skip


def plant(path: Path, text: str = "1.0\n", provenance: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if provenance is not None:
        sidecar_path(path).write_text(json.dumps(provenance))
    return path


def plant_sweep(directory: Path, calibrated: bool = True, **row) -> None:
    """A sweep directory of one complete row (fields in `row` override it), its config and its sweeps.jsonl."""
    fields = {"run_id": "hybrid-L2-s0-abc", "status": "ok", "command": None, "bf16_support": "avx512_bf16",
              **{k: COMPLETE[k] for k in ROW_FIELDS}, **row}  # fmt: skip
    directory.mkdir(parents=True)
    pd.DataFrame([fields]).to_parquet(directory / "results.parquet")
    plant(directory / "configs" / "hybrid-L2-s0-abc.json", "{}")
    plant(directory / "runs" / "hybrid-L2-s0-abc.parquet", "rows")
    start = {"started_at": "2026-12-03T09:00:00+00:00", "git_commit": COMMIT}
    calibration = {"calibration": {"matmul_gflops": 150.0}} if calibrated else {}
    plant(directory / "sweeps.jsonl", json.dumps({**start, **calibration}))


def test_a_planted_file_without_provenance_is_named_and_a_complete_sidecar_clears_it(tmp_path):
    plant(tmp_path / "benchmarks" / "speed.txt")
    plant(tmp_path / "benchmarks" / "ok.json", "{}", COMPLETE)
    assert evidence_problems(tmp_path) == {"benchmarks/speed.txt": ["no provenance sidecar speed.txt.provenance.json"]}
    plant(tmp_path / "benchmarks" / "speed.txt", provenance=COMPLETE)
    assert evidence_problems(tmp_path) == {}


@pytest.mark.parametrize(("change", "gap"), [
    ({"calibration": None}, "no calibration"), ({"calibration": {"threads": 2}}, "calibration has no matmul_gflops"),
    ({"git_dirty": True}, "dirty tree"), ({"cpu_flags": None}, "no cpu_flags"), ({"command": ""}, "no command"),
    ({"git_commit": "8b68412"}, "not a full commit hash"),
])  # fmt: skip
def test_an_incomplete_sidecar_names_what_it_lacks(tmp_path, change, gap):
    plant(tmp_path / "x.csv", "a\n1\n", {**COMPLETE, **change})
    (found,) = evidence_problems(tmp_path).values()
    assert len(found) == 1 and gap in found[0]


def test_figures_hidden_files_and_sidecars_are_not_evidence(tmp_path):
    for name in ("plot.png", "plot.svg", ".lock"):
        plant(tmp_path / "x" / name)
    plant(tmp_path / "x" / "table.csv", provenance=COMPLETE)
    assert evidence_problems(tmp_path) == {}


def test_a_complete_sweep_directory_covers_its_reports_and_run_files(tmp_path):
    plant_sweep(tmp_path / "s")
    for name in ("report.md", "growth_fit.parquet", "verdict.md", "references.json", "plots/a.png",
                 "eval/hybrid-L2-s0-abc.parquet"):  # fmt: skip
        plant(tmp_path / "s" / name)
    assert evidence_problems(tmp_path) == {}


@pytest.mark.parametrize(("row", "calibrated", "gap"), [
    ({}, False, "1 of 1 rows: no calibration"),
    ({"code_tree": None}, True, "1 of 1 rows: no code_tree"),
    ({"bf16_support": None}, True, "1 of 1 rows: no bf16_support"),
    ({"git_dirty": True}, True, "1 of 1 rows: git_dirty: true"),
    ({"git_commit": "b" * 40}, True, "1 of 1 rows: no calibration"),  # started at another commit than the row's
])  # fmt: skip
def test_a_sweep_directory_names_what_its_rows_lack(tmp_path, row, calibrated, gap):
    plant_sweep(tmp_path / "s", calibrated, **row)
    found = evidence_problems(tmp_path)
    assert found.keys() == {"s/"} and len(found["s/"]) == 1 and found["s/"][0].startswith(gap)


def test_a_predicted_row_needs_no_bf16_support_and_a_row_command_stands_for_a_config(tmp_path):
    plant_sweep(tmp_path / "s", status="predicted", bf16_support=None, command="python -m bench.run strategy=hybrid")
    (tmp_path / "s" / "configs" / "hybrid-L2-s0-abc.json").unlink()
    assert evidence_problems(tmp_path) == {}
    plant_sweep(tmp_path / "t", command=None)
    (tmp_path / "t" / "configs" / "hybrid-L2-s0-abc.json").unlink()
    assert evidence_problems(tmp_path) == {"t/": [f"1 of 1 rows: {NO_COMMAND}"]}


def test_other_files_in_a_sweep_directory_need_their_own_sidecar(tmp_path):
    plant_sweep(tmp_path / "s")
    plant(tmp_path / "s" / "stdout.txt")
    plant(tmp_path / "s" / "eval" / "mbert-L2-s0-zzz.parquet")  # a run the rows do not know
    found = evidence_problems(tmp_path)
    assert found.keys() == {"s/stdout.txt", "s/eval/mbert-L2-s0-zzz.parquet"}
    assert "no row 'mbert-L2-s0-zzz'" in found["s/eval/mbert-L2-s0-zzz.parquet"][0]


def test_runs_without_a_sweep_are_rows_without_a_calibration(tmp_path):
    """`python -m bench.run results.dir=...` writes runs/ and no sweeps.jsonl: still rows, never calibrated."""
    plant_sweep(tmp_path / "s")
    (tmp_path / "s" / "sweeps.jsonl").unlink()
    (tmp_path / "s" / "results.parquet").rename(tmp_path / "s" / "runs" / "hybrid-L2-s0-abc.parquet")
    found = evidence_problems(tmp_path)
    assert found.keys() == {"s/"} and found["s/"][0].startswith("1 of 1 rows: no calibration")
