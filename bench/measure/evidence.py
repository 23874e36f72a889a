"""The provenance of an evidence file (a benchmark's output, a summary): where its numbers came from.

Rows of a sweep carry their provenance column by column; a file written by a benchmark script, an
evaluation or a test tier carries this header in its sidecar `<file>.provenance.json`
(bench.measure.sidecar): commit, code tree and tree state, CPU, its SIMD flags and bf16 support, the
machine's calibration measured just before (the sweep's own fp32 matmul unit), library versions and the
exact command. A script builds the header once, before it measures, and writes one sidecar per file.
"""

from __future__ import annotations

import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from bench import PROJECT_ROOT
from bench.measure.calibration import calibrate
from bench.measure.hardware import bf16_support, cpu_flags
from bench.measure.provenance import code_tree, cpu_model, git_commit, git_dirty
from bench.measure.sidecar import write_provenance

SIMD_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")  # what fp32/bf16 kernels use


def command_line(argv: list[str] | None = None, program: str = "python") -> str:
    """The command as it was typed, quoted so a shell runs it again: `python script.py args` by default;
    `program="python -m bench.evaluate"` for a module, whose sys.argv[0] is a file path nobody typed."""
    args = list(sys.argv if argv is None else argv)
    return " ".join([program, shlex.join(args)]) if args else program


def evidence_header(command: str, threads: int) -> dict:
    """Everything a reader needs to reproduce or discount the numbers that follow; measures the machine's
    calibration (a few seconds) with `threads`, so build it before the measurement, on the same threads."""
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "git_commit": git_commit(PROJECT_ROOT),
        "git_dirty": git_dirty(PROJECT_ROOT),
        "code_tree": code_tree(PROJECT_ROOT),
        "cpu_model": cpu_model(),
        "cpu_flags": sorted(set(SIMD_FLAGS) & cpu_flags()),
        "bf16_support": bf16_support("cpu"),
        "threads": threads,
        "calibration": calibrate(threads),
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
    }


def write_evidence(path: Path | str, text: str, header: dict, **extra) -> Path:
    """Write an evidence file's text and its provenance sidecar (header plus `extra`); returns the file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    write_provenance(path, header, **extra)
    return path


class Transcript:
    """The lines a benchmark prints as it runs, kept so that exactly those lines become its evidence file."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        print(line, flush=True)  # as it happens: a long benchmark shows progress
        self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)
