"""Why `mbert`'s host RSS grows while its tensor peak stays flat: the allocator, not the tensors.

Runs the tiny `mbert` run in fresh processes (`python -m bench.run`, eval off) and prints each run's
peak RSS and tensor peak, under glibc's default malloc and under settings that change only how freed
memory is kept: `MALLOC_ARENA_MAX` (fewer arenas: the fragmentation-across-threads guess),
`MALLOC_TRIM_THRESHOLD_=0` (return freed memory at the heap's top to the kernel at once) and
jemalloc by LD_PRELOAD where installed.

The per-language budget couples L with the step count (20 steps per language), so the grid also
runs L=2 and L=11 at the same fixed step count: if RSS follows the steps and not L, and the
allocator settings flatten it while the tensor peak stays put, the growth is freed memory that
glibc keeps (the masked-LM logits change shape every step, so freed blocks rarely fit the next
request), not live tensors.

    python tests/benchmarks/mbert_rss.py --steps 220 --out results/benchmarks/mbert_rss.txt

`--out` writes the printed table and its provenance sidecar (`<file>.provenance.json`).
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout, installed or not

from bench.measure.evidence import Transcript, command_line, evidence_header, write_evidence  # noqa: E402

THREADS = 2  # the runs' train.threads (conf/train/default.yaml), passed explicitly so the calibration uses the same
JEMALLOC = next(iter(glob.glob("/usr/lib/x86_64-linux-gnu/libjemalloc.so*") + glob.glob("/lib/x86_64-linux-gnu/libjemalloc.so*")), None)
ALLOCATORS = {
    "glibc default": {},
    "MALLOC_ARENA_MAX=1": {"MALLOC_ARENA_MAX": "1"},
    "MALLOC_TRIM_THRESHOLD_=0": {"MALLOC_TRIM_THRESHOLD_": "0"},
    **({"jemalloc (LD_PRELOAD)": {"LD_PRELOAD": JEMALLOC}} if JEMALLOC else {}),
}


def run(languages: int, budget: list[str], env: dict[str, str]) -> pd.Series:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "bench.run", "strategy=mbert", f"languages={languages}", "eval=none",
                   f"train.threads={THREADS}", "profiler.count_flops=false", f"results.dir={out}", *budget]  # fmt: skip
        subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True)
        return pd.read_parquet(next(Path(out, "runs").glob("*.parquet"))).iloc[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=220, help="steps of the L=2 same-steps row (220: L=11's default budget)")
    parser.add_argument("--out", type=Path, help="write the table here (and its provenance sidecar)")
    args = parser.parse_args()
    header = evidence_header(command_line(), THREADS)
    fixed = ["train.budget=fixed", f"train.steps={args.steps}"]
    grid = [("glibc default", 2, []), ("glibc default", 11, []), ("glibc default", 2, fixed)]
    grid += [(name, 11, []) for name in ALLOCATORS if name != "glibc default"]
    say = Transcript()
    say(f"{'allocator':30s} {'L':>3s} {'steps':>5s} {'peak RSS MiB':>12s} {'tensor peak MiB':>15s}")
    for name, languages, budget in grid:
        row = run(languages, budget, ALLOCATORS[name])
        rss_mib, tensor_mib = row.peak_rss_bytes / 2**20, row.peak_tensor_bytes / 2**20
        say(f"{name:30s} {languages:3d} {row.steps:5d} {rss_mib:12.0f} {tensor_mib:15.0f}")
    if args.out:
        write_evidence(args.out, say.text, header, allocators=ALLOCATORS)


if __name__ == "__main__":
    main()
