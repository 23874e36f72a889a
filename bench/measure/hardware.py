"""What the processor can do natively, for precision choices that follow the hardware.

Machines of one nominal kind differ: some CPUs have AMX or AVX-512 BF16 instructions (bfloat16
matrix multiplies in hardware), others only AVX2, where PyTorch emulates bfloat16 and it is slower
than float32. `auto` precisions therefore pick bf16 only where it is native.
"""

from __future__ import annotations

from pathlib import Path

import torch

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # in order of preference: AMX tiles beat AVX-512 BF16 dot products


def cpu_flags(cpuinfo: Path | str = "/proc/cpuinfo") -> frozenset[str]:
    """The first processor's feature flags (empty where /proc/cpuinfo is unreadable or has none)."""
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def bf16_support(device_type: str, cpuinfo: Path | str = "/proc/cpuinfo") -> str:
    """How `device_type` runs bfloat16: the CPU flag that makes it native, "cuda", or "emulated"."""
    if device_type == "cuda":
        return "cuda" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "emulated"
    flags = cpu_flags(cpuinfo)
    return next((flag for flag in BF16_CPU_FLAGS if flag in flags), "emulated")


def native_bf16(device_type: str, cpuinfo: Path | str = "/proc/cpuinfo") -> bool:
    return bf16_support(device_type, cpuinfo) != "emulated"
