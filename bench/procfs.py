"""CPU seconds and resident memory of whole process trees, from /proc (Linux only).

CPU of a tree = sum over its live processes of utime + stime + cutime + cstime. A child that exits
is reaped by its parent and its time moves into the parent's cutime/cstime, so the difference
between two snapshots counts short-lived children (e.g. PostgreSQL backends) too.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # fields after the command name, which may itself hold spaces and parentheses
    return text.rsplit(")", 1)[1].split()


def children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None:
            continue
        out.setdefault(int(fields[1]), []).append(int(entry.name))
    return out


def tree(roots: list[int]) -> list[int]:
    """The live processes of the trees rooted at `roots` (roots included when alive)."""
    kids = children_map()
    seen: list[int] = []
    stack = [pid for pid in roots if Path(f"/proc/{pid}").exists()]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.append(pid)
        stack.extend(kids.get(pid, []))
    return seen


def cpu_seconds(roots: list[int]) -> float:
    total = 0
    for pid in tree(roots):
        fields = _stat(pid)
        if fields is not None:
            # utime, stime, cutime, cstime (fields 14-17 of proc(5), here shifted by 2)
            total += sum(int(f) for f in fields[11:15])
    return total / _TICK


def rss_bytes(roots: list[int]) -> int:
    total = 0
    for pid in tree(roots):
        try:
            resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        total += resident * _PAGE
    return total


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def pss_bytes(roots: list[int]) -> int:
    """Proportional set size of a tree: shared pages (PostgreSQL's buffers) counted once."""
    total = 0
    for pid in tree(roots):
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
                break
    return total


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    total = sum(fields[:8])
    idle = fields[3] + fields[4]
    return (total - idle) / _TICK, total / _TICK
