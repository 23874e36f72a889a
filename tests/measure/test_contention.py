"""Contention fields: what this process and the rest of the machine used; calibration gives positive speeds."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.measure.calibration import calibrate
from bench.measure.contention import Snapshot, contention_fields, machine_busy_s


def test_fields_are_differences_between_snapshots():
    start = Snapshot(wall=10.0, user_s=1.0, system_s=0.5, voluntary=10, involuntary=5, load=0.2, machine_busy_s=100.0)
    end = Snapshot(wall=20.0, user_s=6.0, system_s=1.5, voluntary=30, involuntary=9, load=1.7, machine_busy_s=112.0)
    fields = contention_fields(start, end, threshold=0.2)
    assert fields["cpu_user_s"] == 5.0 and fields["cpu_system_s"] == 1.0
    assert fields["voluntary_switches"] == 20 and fields["involuntary_switches"] == 4
    assert (fields["load_avg_start"], fields["load_avg_end"]) == (0.2, 1.7)
    assert fields["other_cpu_s"] == 6.0 and fields["contended"]  # 12 busy - 6 own = 6 s over 10 s of wall
    quiet = contention_fields(start, Snapshot(20.0, 6.0, 1.5, 30, 9, 1.7, 107.0), threshold=0.2)
    assert quiet["other_cpu_s"] == 1.0 and not quiet["contended"]


def _window(work) -> dict:
    start = Snapshot.now()
    work()
    return contention_fields(start, Snapshot.now(), threshold=0.2)


def _burn_here(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def _burn_in_a_neighbour(seconds: float) -> None:
    subprocess.run([sys.executable, "-c", f"import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass"])


def test_a_busy_neighbour_is_seen_and_our_own_work_is_not():
    """Against a quiet window of the same length measured just before, so a busy machine cannot make it
    pass by itself: a neighbour's second of CPU adds about a second to other_cpu_s, our own second adds
    nothing (planted: not subtracting our own CPU makes the second assertion fail)."""
    if machine_busy_s() is None:  # no /proc/stat (not Linux): nothing to say
        return
    baseline = _window(lambda: time.sleep(1.0))["other_cpu_s"]
    if baseline > 0.5:  # others already use the spare core: a neighbour would only displace them, not add
        pytest.skip(f"the machine is busy (others used {baseline:.1f} CPU-s in a 1 s quiet window)")
    neighbour = _window(lambda: _burn_in_a_neighbour(1.0))
    assert neighbour["other_cpu_s"] - baseline > 0.7  # the neighbour's second (plus its start-up), as seen from here
    assert neighbour["contended"]
    own = _window(lambda: _burn_here(1.0))
    assert own["cpu_user_s"] + own["cpu_system_s"] > 0.9
    assert own["other_cpu_s"] - baseline < 0.4


def test_calibration_reports_positive_speeds():
    started = time.perf_counter()
    result = calibrate(threads=1, repeats=2, trials=3)
    assert result["matmul_gflops"] > 0 and result["copy_gb_per_s"] > 0 and result["threads"] == 1
    assert result["trials"] == 3 and result["matmul_spread"] >= 0 and result["stable"] == (result["matmul_spread"] < 0.10)
    assert time.perf_counter() - started < 30
