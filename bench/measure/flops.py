"""FLOPs of a training step, achieved TFLOP/s, and model FLOPs utilisation against a cited peak table.

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode`, which counts matrix
multiplications, convolutions and attention (forward and backward) from shapes alone, so it
works on fake tensors too; elementwise ops, softmax, layer norm and the optimizer update are
not counted, which is the usual convention for MFU. MFU is None where a peak is meaningless
(CPU) or unknown (a GPU missing from the table, or a precision the GPU has no figure for).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

PRECISIONS = ("bf16", "fp16", "tf32", "fp32")


def count_flops(step: Callable[[], object]) -> int:
    """FLOPs of whatever `step` runs (one full training step: forward, backward, optimizer)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def achieved_tflops_per_s(total_flops: float, seconds: float) -> float:
    """Counted FLOPs of the measured steps over their measured time, in TFLOP/s."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    return total_flops / seconds / 1e12


@dataclass(frozen=True)
class DevicePeak:
    """Dense (no structured sparsity) peak TFLOP/s of one GPU model, from its vendor's datasheet."""

    name_pattern: str  # regular expression on torch.cuda.get_device_name()
    tflops: dict[str, float]
    source: str


# Datasheets quote tensor-core figures "with sparsity"; the dense figure is half of that.
# More specific patterns come first (H100 NVL before H100, L40S before L4).
_H100 = "NVIDIA H100 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/h100/"
_H200 = "NVIDIA H200 Tensor Core GPU product brief, https://www.nvidia.com/en-us/data-center/h200/"
PEAK_TABLE: tuple[DevicePeak, ...] = (
    DevicePeak(r"H100 NVL", {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0}, _H100),
    DevicePeak(r"H100.*PCIe", {"bf16": 756.5, "fp16": 756.5, "tf32": 378.0, "fp32": 51.0}, _H100),
    DevicePeak(r"H100", {"bf16": 989.5, "fp16": 989.5, "tf32": 494.5, "fp32": 67.0}, _H100 + " (SXM)"),
    DevicePeak(r"H200 NVL", {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0}, _H200),
    DevicePeak(r"H200", {"bf16": 989.5, "fp16": 989.5, "tf32": 494.5, "fp32": 67.0}, _H200 + " (SXM)"),
    DevicePeak(r"A100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
               "NVIDIA A100 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/a100/"),  # fmt: skip
    DevicePeak(r"L40S", {"bf16": 362.05, "fp16": 362.05, "tf32": 183.0, "fp32": 91.6},
               "NVIDIA L40S GPU datasheet, https://www.nvidia.com/en-us/data-center/l40s/"),  # fmt: skip
    DevicePeak(r"\bL4\b", {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3},
               "NVIDIA L4 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/l4/"),  # fmt: skip
    DevicePeak(r"\bA10\b", {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2},
               "NVIDIA A10 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/products/a10-gpu/"),  # fmt: skip
    DevicePeak(r"V100S", {"fp16": 130.0, "fp32": 16.4},
               "NVIDIA V100S datasheet (PCIe), https://images.nvidia.com/content/technologies/volta/pdf/volta-v100-datasheet-update-us-1165301-r5.pdf"),  # fmt: skip
    DevicePeak(r"V100.*PCIE", {"fp16": 112.0, "fp32": 14.0},
               "NVIDIA V100 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/v100/"),  # fmt: skip
    DevicePeak(r"V100", {"fp16": 125.0, "fp32": 15.7},
               "NVIDIA V100 Tensor Core GPU datasheet (SXM2), https://www.nvidia.com/en-us/data-center/v100/"),  # fmt: skip
    DevicePeak(r"\bT4\b", {"fp16": 65.0, "fp32": 8.1},
               "NVIDIA T4 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/tesla-t4/"),  # fmt: skip
)


def matmul_precision(mixed_precision: str) -> str:
    """The precision matrix multiplies run in, from `train.mixed_precision` ("no", "bf16", "fp16")."""
    if mixed_precision in ("bf16", "fp16"):
        return mixed_precision
    if mixed_precision != "no":
        raise ValueError(f"mixed_precision must be one of no, bf16, fp16, got {mixed_precision!r}")
    # float32 matmuls use TF32 tensor cores when PyTorch is allowed to ("high" or "medium").
    return "fp32" if torch.get_float32_matmul_precision() == "highest" else "tf32"


def device_peak(device_name: str) -> DevicePeak | None:
    """The table entry for a GPU name as CUDA reports it; None if the GPU is not in the table."""
    for entry in PEAK_TABLE:
        if re.search(entry.name_pattern, device_name, flags=re.IGNORECASE):
            return entry
    return None


def peak_tflops(device_name: str, precision: str) -> float | None:
    """Dense peak TFLOP/s of a GPU at a precision; None if unknown.

    A GPU without TF32 (V100, T4) runs "tf32"-allowed float32 matmuls at its fp32 rate."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    entry = device_peak(device_name)
    if entry is None:
        return None
    if precision == "tf32" and "tf32" not in entry.tflops:
        return entry.tflops.get("fp32")
    return entry.tflops.get(precision)


def mfu(achieved_tflops: float | None, device_type: str, device_name: str | None, precision: str) -> float | None:
    """Model FLOPs utilisation: achieved over peak TFLOP/s; None on CPU or an unknown GPU."""
    if achieved_tflops is None or device_type != "cuda" or not device_name:
        return None  # a CPU has no comparable tensor-core peak
    peak = peak_tflops(device_name, precision)
    return achieved_tflops / peak if peak else None
