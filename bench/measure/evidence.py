"""The provenance header of an evidence file (a benchmark's output, a summary): where its numbers came from.

Rows of a sweep carry their provenance column by column; a benchmark or a summary written by a script
carries this header instead: commit, code tree and tree state, CPU and its bf16 support, the machine's
calibration measured just before, library versions and the exact command.
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone

import torch

from bench import PROJECT_ROOT
from bench.measure.calibration import calibrate
from bench.measure.hardware import bf16_support, cpu_flags
from bench.measure.provenance import code_tree, cpu_model, git_commit, git_dirty

SIMD_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")


def evidence_header(command: str, threads: int, calibrate_now: bool = True) -> dict:
    """Everything a reader needs to reproduce or discount the numbers that follow."""
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
        "calibration": calibrate(threads) if calibrate_now else None,
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
    }
