"""Tests of bench.measure.flops: counted FLOPs of a known layer, the peak table, and when MFU is None."""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from bench.measure.flops import PEAK_TABLE, achieved_tflops_per_s, count_flops, device_peak, matmul_precision, mfu, peak_tflops


def linear_step(m: int = 8, k: int = 16, n: int = 4) -> None:
    layer = torch.nn.Linear(k, n, bias=False)
    x = torch.randn(m, k, requires_grad=True)
    layer(x).sum().backward()


def test_linear_forward_and_backward_is_three_matmuls():
    m, k, n = 8, 16, 4
    # Forward x@W^T, backward grad_x and grad_W: three (m,k,n) matmuls of 2*m*k*n FLOPs each.
    assert count_flops(lambda: linear_step(m, k, n)) == 2 * 3 * m * n * k


def test_flops_are_counted_on_fake_tensors():
    with FakeTensorMode():
        assert count_flops(linear_step) == 2 * 3 * 8 * 16 * 4


def test_achieved_tflops_is_total_flops_over_time():
    assert achieved_tflops_per_s(3e12, 2.0) == 1.5
    with pytest.raises(ValueError, match="seconds"):
        achieved_tflops_per_s(1.0, 0.0)


def test_mfu_is_none_on_cpu_and_unknown_devices():
    assert mfu(1.0, "cpu", "AMD EPYC 7763", "fp32") is None
    assert mfu(1.0, "cuda", "NVIDIA GeForce GTX 1080", "bf16") is None
    assert mfu(None, "cuda", "NVIDIA H100 80GB HBM3", "bf16") is None
    assert mfu(1.0, "cuda", "Tesla T4", "bf16") is None  # no bf16 tensor cores


def test_mfu_against_the_h100_sxm_peak():
    assert mfu(98.95, "cuda", "NVIDIA H100 80GB HBM3", "bf16") == pytest.approx(0.1)


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989.5),
        ("NVIDIA H100 PCIe", 756.5),
        ("NVIDIA H100 NVL", 835.5),
        ("NVIDIA H200", 989.5),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A100 80GB PCIe", 312.0),
        ("NVIDIA L40S", 362.05),
        ("NVIDIA L4", 121.0),
        ("NVIDIA A10", 125.0),
    ],
)
def test_device_names_match_the_right_entry(name, peak):
    assert peak_tflops(name, "bf16") == peak


@pytest.mark.parametrize(("name", "fp16", "fp32"), [("Tesla V100S-PCIE-32GB", 130.0, 16.4), ("Tesla V100-PCIE-16GB", 112.0, 14.0),
                                                    ("Tesla V100-SXM2-32GB", 125.0, 15.7), ("Tesla T4", 65.0, 8.1)])  # fmt: skip
def test_volta_and_turing_entries_and_their_float32_matmuls(name, fp16, fp32):
    assert (peak_tflops(name, "fp16"), peak_tflops(name, "fp32")) == (fp16, fp32)
    assert peak_tflops(name, "tf32") == fp32  # no TF32: float32 matmuls run at the fp32 rate
    assert mfu(fp32 / 2, "cuda", name, "tf32") == 0.5  # MFU is not lost when tf32 is allowed


def test_similar_names_do_not_match():
    assert device_peak("NVIDIA A10G") is None  # AWS part without a public NVIDIA datasheet
    assert device_peak("NVIDIA GeForce RTX 4090") is None


def test_every_entry_cites_a_source():
    for entry in PEAK_TABLE:
        assert entry.source.startswith("NVIDIA") and "https://" in entry.source


def test_matmul_precision_follows_the_config_and_tf32_setting():
    before = torch.get_float32_matmul_precision()
    try:
        assert matmul_precision("bf16") == "bf16"
        torch.set_float32_matmul_precision("highest")
        assert matmul_precision("no") == "fp32"
        torch.set_float32_matmul_precision("high")
        assert matmul_precision("no") == "tf32"
    finally:
        torch.set_float32_matmul_precision(before)
    with pytest.raises(ValueError, match="mixed_precision"):
        matmul_precision("fp8")
