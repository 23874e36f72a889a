"""Where a result came from: code version, library versions, hardware and threads.

Every field is best effort: a source tree that is not a git checkout, a machine without git
or /proc, or a GPU that cannot be queried gives None for that field, never an error, because
provenance must not be the reason a finished run is lost.
"""

from __future__ import annotations

import hashlib
import platform
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

from bench import PROJECT_ROOT

RESULTS_PATH = "results"  # where sweeps write; changes there do not make the tree dirty
CODE_PATHS = ("bench", "conf", "data", "pyproject.toml")  # what a result depends on: its code tree


@dataclass(frozen=True)
class Provenance:
    """The provenance columns of a run (names match `bench.results.schema.RunRecord`, plus torch_threads)."""

    git_commit: str | None
    git_dirty: bool | None
    code_tree: str | None  # hash of HEAD's bench/, conf/, data/ and pyproject.toml: commits with equal code share it
    python_version: str
    torch_version: str
    transformers_version: str | None
    device_name: str | None
    cpu_model: str | None
    hostname: str | None
    torch_threads: int


def collect_provenance(device: torch.device | str = "cpu", repo: Path | str = PROJECT_ROOT) -> Provenance:
    """Provenance of this process running on `device`, with the git state of `repo`."""
    commit = git_commit(repo)
    cpu = cpu_model()
    return Provenance(
        git_commit=commit,
        git_dirty=git_dirty(repo) if commit else None,
        code_tree=code_tree(repo) if commit else None,
        python_version=platform.python_version(),
        torch_version=torch.__version__,
        transformers_version=_transformers_version(),
        device_name=_device_name(torch.device(device), cpu),
        cpu_model=cpu,
        hostname=socket.gethostname() or None,
        torch_threads=torch.get_num_threads(),
    )


def git_commit(repo: Path | str) -> str | None:
    """HEAD's full hash; None outside a checkout, before the first commit, or without git."""
    return _git(repo, "rev-parse", "--verify", "--quiet", "HEAD")


def code_tree(repo: Path | str, commit: str = "HEAD") -> str | None:
    """A hash of the code a result depends on at `commit` (CODE_PATHS' git tree entries): two commits
    that differ only in results, docs or tests have the same code tree, so rows measured at either
    belong to one experiment (a sweep resumed after committing partial results)."""
    listing = _git(repo, "ls-tree", commit, "--", *CODE_PATHS)
    return None if listing is None else hashlib.sha256(listing.encode()).hexdigest()[:16]


def git_dirty(repo: Path | str) -> bool | None:
    """Whether the tree differs from HEAD outside `results/`: modified tracked files or untracked ones
    (a new module changes behaviour as much as an edit). Results a sweep writes are not code changes."""
    status = _git(repo, "status", "--porcelain", "--", ".", f":(exclude){RESULTS_PATH}")
    return None if status is None else bool(status)


def git_ignored(repo: Path | str, path: Path | str) -> bool:
    """Whether git ignores `path` (True outside a checkout: nothing there is committed by accident)."""
    try:
        result = subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", str(Path(path).resolve())],
                                capture_output=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return True
    return result.returncode != 1  # 0: ignored; 1: not ignored; 128: not a checkout


def _git(repo: Path | str, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None  # git not installed, or hung on a network file system
    return result.stdout.strip() if result.returncode == 0 else None


def cpu_model(cpuinfo: Path | str = "/proc/cpuinfo") -> str | None:
    """The CPU's marketing name from /proc/cpuinfo (x86 "model name", some ARM "Model"), else platform's guess."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def _device_name(device: torch.device, cpu: str | None) -> str | None:
    """The CUDA device's name, the CPU model for "cpu"; None when a GPU cannot be queried."""
    if device.type == "cpu":
        return cpu
    if device.type != "cuda":
        return device.type
    try:
        return torch.cuda.get_device_name(device)
    except Exception:  # no driver, or the device index does not exist
        return None


def _transformers_version() -> str | None:
    try:
        import transformers
    except ImportError:
        return None
    return transformers.__version__
