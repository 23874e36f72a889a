"""Tests of bench.measure.energy with a fake powercap sysfs tree and a fake pynvml module."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from bench.measure.energy import EnergyMeter, rapl_package_zones


def make_zone(root: Path, name: str, label: str, energy_uj: int, max_uj: int = 1_000_000) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(label + "\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone


def set_energy(zone: Path, energy_uj: int) -> None:
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def powercap(tmp_path):
    """Two packages, a core sub-zone inside package 0 and a psys zone; only the packages count."""
    root = tmp_path / "powercap"
    zones = [make_zone(root, "intel-rapl:0", "package-0", 100_000), make_zone(root, "intel-rapl:1", "package-1", 200_000)]
    make_zone(root, "intel-rapl:0:0", "core", 50_000)
    make_zone(root, "intel-rapl:2", "psys", 10_000)
    (root / "intel-rapl").mkdir()  # the control-type directory, no counter
    return root, zones


def test_only_package_zones_are_summed(powercap):
    root, zones = powercap
    assert [z.name for z in rapl_package_zones(root)] == ["intel-rapl:0", "intel-rapl:1"]


def test_rapl_energy_is_the_sum_of_package_deltas(powercap):
    root, (package0, package1) = powercap
    meter = EnergyMeter("cpu", powercap_root=str(root))
    meter.start()
    set_energy(package0, 600_000)  # +0.5 J
    set_energy(package1, 450_000)  # +0.25 J
    assert meter.stop() == (pytest.approx(0.75), "rapl")


def test_rapl_wraparound_uses_max_energy_range(powercap):
    root, (package0, package1) = powercap
    meter = EnergyMeter("cpu", powercap_root=str(root))
    meter.start()
    set_energy(package0, 50_000)  # wrapped: 1_000_000 - 100_000 + 50_000 = 950_000 uJ
    assert meter.stop() == (pytest.approx(0.95), "rapl")


def test_no_readable_counter_means_no_number(tmp_path, powercap):
    assert EnergyMeter("cpu", powercap_root=str(tmp_path / "absent")).stop() == (None, None)
    meter = EnergyMeter("cpu", powercap_root=str(tmp_path / "absent"))
    meter.start()
    assert meter.stop() == (None, None)
    root, (package0, _) = powercap
    meter = EnergyMeter("cpu", powercap_root=str(root))
    meter.start()
    (package0 / "energy_uj").unlink()  # became unreadable mid-window
    assert meter.stop() == (None, None)


def make_fake_pynvml(readings_mj: list[int], fail: bool = False) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    module.log = []
    counter = iter(readings_mj)

    def handle_by_uuid(uuid):
        if fail:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        module.log.append(("handle", uuid))
        return "handle"

    module.nvmlInit = lambda: module.log.append("init")
    module.nvmlShutdown = lambda: module.log.append("shutdown")
    module.nvmlDeviceGetHandleByUUID = handle_by_uuid
    module.nvmlDeviceGetTotalEnergyConsumption = lambda handle: next(counter)
    return module


@pytest.fixture
def fake_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    props = types.SimpleNamespace(uuid="GPU-0000-test")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)


def test_nvml_energy_in_joules(fake_cuda, monkeypatch, tmp_path):
    fake = make_fake_pynvml([10_000, 12_500])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    meter = EnergyMeter("cuda:0", powercap_root=str(tmp_path))
    meter.start()
    assert meter.stop() == (pytest.approx(2.5), "nvml")
    assert fake.log == ["init", ("handle", "GPU-0000-test"), "shutdown"]


def test_nvml_failure_falls_back_to_rapl(fake_cuda, monkeypatch, powercap):
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml([], fail=True))
    root, (package0, _) = powercap
    meter = EnergyMeter("cuda:0", powercap_root=str(root))
    meter.start()
    set_energy(package0, 300_000)
    assert meter.stop() == (pytest.approx(0.2), "rapl")


def test_cpu_runs_never_touch_nvml(monkeypatch, tmp_path):
    fake = make_fake_pynvml([1, 2])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    meter = EnergyMeter("cpu", powercap_root=str(tmp_path))
    meter.start()
    assert meter.stop() == (None, None)
    assert fake.log == []
