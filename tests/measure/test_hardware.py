"""Tests of bench.measure.hardware and the `auto` precisions it drives."""

from __future__ import annotations

import pytest

from bench.measure import hardware
from tests.conftest import compose

AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
AVX2 = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma\n"


@pytest.mark.parametrize("cpuinfo, expected", [(AMX, "amx_bf16"), (ZEN4, "avx512_bf16"), (AVX2, "emulated"), ("", "emulated")])
def test_bf16_support_reads_the_cpu_flags(tmp_path, cpuinfo, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert hardware.bf16_support("cpu", path) == expected
    assert hardware.native_bf16("cpu", path) is (expected != "emulated")


def test_unreadable_cpuinfo_is_emulated_not_an_error(tmp_path):
    assert hardware.bf16_support("cpu", tmp_path / "missing") == "emulated"


@pytest.mark.parametrize("native", [True, False])
def test_auto_precisions_follow_the_cpu_and_enter_the_run_identity(monkeypatch, native):
    import bench.config.run_config as run_config

    monkeypatch.setattr(run_config, "native_bf16", lambda device_type: native)
    cfg = compose("device=cpu", "train.mixed_precision=auto", "eval.precision=auto")
    assert (cfg.train.mixed_precision, cfg.eval.precision) == (("bf16", "bf16") if native else ("no", "fp32"))
    explicit = compose("device=cpu", f"train.mixed_precision={'bf16' if native else 'no'}",
                       f"eval.precision={'bf16' if native else 'fp32'}")  # fmt: skip
    assert cfg.config_hash() == explicit.config_hash()  # auto is resolved at the edge: the hash names what ran
