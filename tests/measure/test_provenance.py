"""Tests of bench.measure.provenance: git state in throwaway repositories, CPU model parsing, no failures."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys

import pytest
import torch

from bench.measure import provenance
from bench.measure.provenance import Provenance, collect_provenance, cpu_model
from bench.results.schema import RunRecord

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo, *args):
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(repo), "GIT_CONFIG_NOSYSTEM": "1"}  # fmt: skip
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def test_collects_versions_and_hardware(tmp_path):
    info = collect_provenance("cpu", repo=tmp_path)
    assert info.python_version == ".".join(map(str, sys.version_info[:3]))
    assert info.torch_version == torch.__version__
    assert info.transformers_version
    assert info.torch_threads == torch.get_num_threads()
    assert info.device_name == info.cpu_model
    assert info.hostname


def test_not_a_checkout_gives_none(tmp_path):
    info = collect_provenance("cpu", repo=tmp_path)
    assert (info.git_commit, info.git_dirty) == (None, None)


@needs_git
def test_commit_and_dirty_flag(tmp_path):
    git(tmp_path, "init", "-q")
    assert provenance.git_commit(tmp_path) is None  # no commit yet
    (tmp_path / "a.txt").write_text("one\n")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-q", "-m", "first")
    clean = collect_provenance("cpu", repo=tmp_path)
    assert len(clean.git_commit) == 40 and clean.git_dirty is False
    (tmp_path / "results" / "runs").mkdir(parents=True)
    (tmp_path / "results" / "runs" / "r.parquet").write_text("a sweep's output\n")
    assert provenance.git_dirty(tmp_path) is False  # results a sweep writes are not code changes
    (tmp_path / "new_module.py").write_text("x = 1\n")
    assert provenance.git_dirty(tmp_path) is True  # an untracked module changes behaviour
    (tmp_path / "new_module.py").unlink()
    (tmp_path / "a.txt").write_text("two\n")
    assert collect_provenance("cpu", repo=tmp_path).git_dirty is True


def test_git_ignored_tells_committed_results_from_scratch_ones(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("results/latest/\n")
    for name in ("latest", "default"):
        (tmp_path / "results" / name).mkdir(parents=True)  # a sweep creates its directory first
    assert provenance.git_ignored(tmp_path, tmp_path / "results" / "latest")
    assert not provenance.git_ignored(tmp_path, tmp_path / "results" / "default")


def test_missing_git_gives_none(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on PATH
    assert provenance.git_commit(tmp_path) is None


def test_cpu_model_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7763 64-Core Processor\n")
    assert cpu_model(cpuinfo) == "AMD EPYC 7763 64-Core Processor"
    assert cpu_model(tmp_path / "absent") == (provenance.platform.processor() or provenance.platform.machine() or None)


def test_unreadable_gpu_name_is_none_not_the_cpu(monkeypatch, tmp_path):
    def no_driver(device):
        raise RuntimeError("Found no NVIDIA driver")

    monkeypatch.setattr(torch.cuda, "get_device_name", no_driver)
    info = collect_provenance("cuda:0", repo=tmp_path)
    assert info.device_name is None and info.cpu_model


def test_gpu_name_comes_from_cuda(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100 80GB HBM3")
    assert collect_provenance("cuda:0", repo=tmp_path).device_name == "NVIDIA H100 80GB HBM3"


def test_fields_fit_the_schema():
    record_fields = {f.name for f in dataclasses.fields(RunRecord)}
    names = {f.name for f in dataclasses.fields(Provenance)} - {"torch_threads"}  # stored as `threads`
    assert names <= record_fields


@needs_git
def test_code_tree_names_the_code_not_the_commit(tmp_path):
    """Committing results or docs keeps the code tree; changing bench/, conf/, data/ or pyproject.toml changes it."""
    git(tmp_path, "init", "-q")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "m.py").write_text("x = 1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "code")
    first = provenance.code_tree(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "row.parquet").write_text("partial results\n")
    (tmp_path / "README.md").write_text("docs\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "partial results")
    assert provenance.code_tree(tmp_path) == first and len(first) == 16
    (tmp_path / "bench" / "m.py").write_text("x = 2\n")
    git(tmp_path, "commit", "-q", "-am", "code change")
    assert provenance.code_tree(tmp_path) != first


def _policy_with_rows(monkeypatch, tmp_path, rows, head="b" * 40, tree="t1"):
    """bench.sweep's committed-results rule over fake rows, with this tree at `head` with code `tree`."""
    import bench.sweep as sweep

    monkeypatch.setattr(sweep, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(sweep, "git_ignored", lambda repo, path: False)
    monkeypatch.setattr(sweep, "git_dirty", lambda repo: False)
    monkeypatch.setattr(sweep, "git_commit", lambda repo: head)
    monkeypatch.setattr(sweep, "code_tree", lambda repo: tree)
    monkeypatch.setattr(sweep, "read_runs", lambda directory: rows)
    results = tmp_path / "results" / "exp"
    results.mkdir(parents=True, exist_ok=True)
    planned = [type("P", (), {"config": type("C", (), {"results": type("R", (), {"allow_dirty": False, "rerun": False})})})]
    return lambda: sweep.committed_results_policy(results, planned)


def test_a_sweep_resumes_over_rows_of_another_commit_with_the_same_code_tree(monkeypatch, tmp_path):
    from bench.errors import BenchError

    same_code = RunRecord(run_id="r1", config_hash="h", git_commit="a" * 40, code_tree="t1")
    _policy_with_rows(monkeypatch, tmp_path, [same_code])()  # accepted: only results or docs changed since
    other_code = RunRecord(run_id="r2", config_hash="h", git_commit="c" * 40, code_tree="t0")
    with pytest.raises(BenchError, match="with other code than this tree"):
        _policy_with_rows(monkeypatch, tmp_path, [same_code, other_code])()
    unknown_code = RunRecord(run_id="r3", config_hash="h", git_commit="c" * 40)  # rows from before code_tree existed
    with pytest.raises(BenchError, match="cccccccccc"):
        _policy_with_rows(monkeypatch, tmp_path, [unknown_code])()
