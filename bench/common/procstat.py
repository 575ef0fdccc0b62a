"""CPU time and memory of a process tree, read from /proc.

A server may be several processes (Kamailio forks one per worker, the main
process only supervises), so every figure is summed over the process and all
its descendants. Memory is reported three ways because they differ a lot for
multi-process servers that share memory:

* ``rss_main_kib``: VmRSS of the top process only;
* ``rss_sum_kib``: VmRSS summed over the tree (counts shared pages repeatedly);
* ``pss_sum_kib``: Pss summed over the tree (shared pages split between their
  users): the fair figure for comparing a multi-process and a one-process server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds of a process tree at one instant, measured two ways.

    `seconds` sums the nanosecond run time of every thread
    (/proc/PID/task/TID/schedstat); `stat_seconds` is utime+stime from
    /proc/PID/stat, in clock ticks (10 ms), sampled by the kernel on ticks and
    therefore noisy for short steps of cheap events. `seconds` falls back to
    `stat_seconds` where schedstat is unavailable.
    """

    seconds: float
    stat_seconds: float
    pids: tuple[int, ...]


@dataclass(frozen=True)
class Memory:
    """Memory of a process tree in KiB (see the module docstring)."""

    rss_main_kib: int
    rss_sum_kib: int
    pss_sum_kib: int
    processes: int


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after it.
    tail = raw[raw.rindex(")") + 2 :].split()
    return tail  # tail[0] is field 3 (state)


def _ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def process_tree(root: int) -> list[int]:
    """Return `root` and all its live descendants (root first)."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        parent = _ppid(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    tree: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        if (_PROC / str(pid)).exists():
            tree.append(pid)
            todo.extend(children.get(pid, []))
    return tree


def stat_cpu_seconds(pid: int) -> float:
    """utime+stime (+cutime+cstime of reaped children) of one process, in seconds."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # utime, stime, cutime, cstime are fields 14..17 (1-based) = tail[11..14].
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS


def sched_cpu_seconds(pid: int) -> float | None:
    """Run time of all threads of one process from schedstat (ns precision), or None."""
    total = 0
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def cpu_seconds(pid: int) -> float:
    """CPU seconds of one process: schedstat if available, else utime+stime."""
    precise = sched_cpu_seconds(pid)
    return stat_cpu_seconds(pid) if precise is None else precise


def tree_cpu(root: int) -> CpuTimes:
    """CPU seconds summed over `root` and its descendants."""
    pids = tuple(process_tree(root))
    return CpuTimes(
        seconds=sum(cpu_seconds(pid) for pid in pids),
        stat_seconds=sum(stat_cpu_seconds(pid) for pid in pids),
        pids=pids,
    )


def _status_kib(pid: int, key: str) -> int:
    try:
        text = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _pss_kib(pid: int) -> int:
    try:
        text = (_PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def tree_memory(root: int) -> Memory:
    """Memory of `root` and its descendants (see `Memory`)."""
    pids = process_tree(root)
    return Memory(
        rss_main_kib=_status_kib(root, "VmRSS"),
        rss_sum_kib=sum(_status_kib(pid, "VmRSS") for pid in pids),
        pss_sum_kib=sum(_pss_kib(pid) for pid in pids),
        processes=len(pids),
    )


@dataclass(frozen=True)
class SystemCpu:
    """Machine-wide CPU seconds (all CPUs) from the first line of /proc/stat."""

    busy: float  # user + nice + system (process context, any process)
    steal: float  # taken by the hypervisor from this VM


def system_cpu() -> SystemCpu:
    """Read machine-wide busy and steal seconds; other load = busy − what we account for."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return SystemCpu(busy=0.0, steal=0.0)
    values = [int(value) for value in fields]
    user, nice, system = values[0], values[1], values[2]
    steal = values[7] if len(values) > 7 else 0
    return SystemCpu(busy=(user + nice + system) / CLOCK_TICKS, steal=steal / CLOCK_TICKS)
