"""Energy of a measured window, read from hardware counters and never estimated.

On an NVIDIA GPU the source is NVML's total-energy counter (millijoules since the driver
loaded; Volta and newer), which covers the GPU board only. Otherwise it is Intel/AMD RAPL
through the powercap sysfs tree (microjoules per CPU package, wrapping at
`max_energy_range_uj`), which covers the CPU packages only and is often readable by root
alone. Where neither is readable the result is (None, None): a missing number is honest, a
TDP-times-time estimate is not.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from bench.measure.memory import nvml_uuid

POWERCAP_ROOT = "/sys/class/powercap"
_PACKAGE_ZONE = re.compile(r"intel-rapl:\d+$")  # top-level zones; sub-zones (core, dram) are inside them


class EnergyMeter:
    """Reads an energy counter at `start()` and `stop()`; `stop()` returns (joules, method).

    method is "nvml", "rapl" or None; joules is None exactly when method is None.
    """

    def __init__(self, device: torch.device | str = "cpu", powercap_root: str = POWERCAP_ROOT) -> None:
        self._device = torch.device(device)
        self._powercap_root = Path(powercap_root)
        self._method: str | None = None
        self._start: Any = None
        self._nvml: Any = None
        self._rapl_zones: list[Path] = []

    def start(self) -> None:
        """Read the first counter that works: NVML for a CUDA device, else RAPL."""
        if self._device.type == "cuda" and self._start_nvml():
            return
        self._start_rapl()

    def stop(self) -> tuple[float | None, str | None]:
        """Energy used since `start()`, in joules, and which counter measured it."""
        if self._method == "nvml":
            return self._stop_nvml(), "nvml"
        if self._method == "rapl":
            joules = self._stop_rapl()
            return (joules, "rapl") if joules is not None else (None, None)
        return None, None

    # ------------------------------------------------------------ NVML

    def _start_nvml(self) -> bool:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByUUID(nvml_uuid(self._device))
            self._start = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except Exception:  # no NVML, an old driver or a pre-Volta GPU: try the next counter
            return False
        self._nvml, self._handle, self._method = pynvml, handle, "nvml"
        return True

    def _stop_nvml(self) -> float:
        try:
            end = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        finally:
            self._nvml.nvmlShutdown()
        return (end - self._start) / 1000.0  # millijoules

    # ------------------------------------------------------------ RAPL

    def _start_rapl(self) -> None:
        zones = rapl_package_zones(self._powercap_root)
        readings = _read_counters(zones)
        if readings is not None:
            self._rapl_zones, self._start, self._method = zones, readings, "rapl"

    def _stop_rapl(self) -> float | None:
        end = _read_counters(self._rapl_zones)
        if end is None:
            return None
        total_uj = 0
        for zone, before, after in zip(self._rapl_zones, self._start, end):
            delta = after - before
            if delta < 0:  # the counter wrapped (once; a window longer than a wrap period is not detectable)
                delta += int((zone / "max_energy_range_uj").read_text())
            total_uj += delta
        return total_uj / 1e6


def rapl_package_zones(root: Path) -> list[Path]:
    """Package-level RAPL zones under the powercap root (psys excluded: it overlaps the packages)."""
    zones = []
    for zone in sorted(root.glob("intel-rapl:*")):
        name_file = zone / "name"
        name = name_file.read_text().strip() if name_file.is_file() else ""
        if _PACKAGE_ZONE.search(zone.name) and not name.startswith("psys"):
            zones.append(zone)
    return zones


def _read_counters(zones: list[Path]) -> list[int] | None:
    """Every zone's energy_uj, or None if there are none or any is unreadable (often root-only)."""
    if not zones:
        return None
    try:
        return [int((zone / "energy_uj").read_text()) for zone in zones]
    except (OSError, ValueError):
        return None
