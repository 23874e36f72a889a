"""Was the machine busy? What this run and everything else on the machine used while it ran.

A reader cannot tell a slower CPU from a contended run from timings alone, so every row records,
over the run's lifetime: the process's user and system CPU seconds, its voluntary and involuntary
context switches, the load average at start and end, and the CPU seconds every other process
(and the hypervisor's steal) took meanwhile, from /proc/stat. A run is flagged `contended` when the
others averaged more than `profiler.contention_threshold` of a core: on a 2-core machine with 2 torch
threads, a busy neighbour can make a step several times slower (OpenMP spin-waiting).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

_PROC_STAT = "/proc/stat"


def machine_busy_s(path: str = _PROC_STAT) -> float | None:
    """CPU seconds the whole machine has been busy since boot (all but idle and iowait), steal included."""
    try:
        with open(path) as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)  # idle, iowait
    busy -= sum(ticks[8:10]) if len(ticks) > 9 else 0  # guest time is already counted in user
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Snapshot:
    wall: float
    user_s: float
    system_s: float
    voluntary: int
    involuntary: int
    load: float
    machine_busy_s: float | None

    @classmethod
    def now(cls) -> Snapshot:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(time.perf_counter(), usage.ru_utime, usage.ru_stime, usage.ru_nvcsw, usage.ru_nivcsw,
                   os.getloadavg()[0], machine_busy_s())  # fmt: skip


def contention_fields(start: Snapshot, end: Snapshot, threshold: float) -> dict:
    """RunRecord columns for the window between two snapshots."""
    wall = end.wall - start.wall
    own = (end.user_s - start.user_s) + (end.system_s - start.system_s)
    fields = {
        "cpu_user_s": end.user_s - start.user_s,
        "cpu_system_s": end.system_s - start.system_s,
        "voluntary_switches": end.voluntary - start.voluntary,
        "involuntary_switches": end.involuntary - start.involuntary,
        "load_avg_start": start.load,
        "load_avg_end": end.load,
    }
    if start.machine_busy_s is not None and end.machine_busy_s is not None and wall > 0:
        others = max(0.0, end.machine_busy_s - start.machine_busy_s - own)
        fields.update(other_cpu_s=others, contended=others / wall > threshold)
    return fields
