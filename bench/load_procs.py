"""bench_load's measurements of processes: CPU and memory of process trees,
read from /proc, sampled in threads, and the CPU clock of a run's steps."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds user+system) of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (bytes) and Threads of a process; empty if it is gone."""
    out: dict[str, int] = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
        elif key == "Threads":
            out[key] = int(value)
    return out


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    return sum(st[1] for p in pids if (st := _stat(p)) is not None)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user
    return (total - idle) / TICK, total / TICK


class Periodic(threading.Thread):
    """Calls `tick` every `interval` seconds until stopped (and once more then)."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval = interval
        self._halt = threading.Event()

    def tick(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.tick()

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.tick()


class ServerSampler(Periodic):
    """Samples the server's process tree every `interval` s: RSS, HWM, threads."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(interval)
        self.pid = pid
        self.peak_rss = self.peak_hwm = self.peak_threads = 0
        self.last_rss = 0
        self.load_max = 0.0
        self.n = 0

    def tick(self) -> None:
        rss = hwm = threads = 0
        for p in process_tree(self.pid):
            s = _status(p)
            rss += s.get("VmRSS", 0)
            hwm = max(hwm, s.get("VmHWM", 0))
            threads += s.get("Threads", 0)
        self.last_rss = rss
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_hwm = max(self.peak_hwm, hwm)
        self.peak_threads = max(self.peak_threads, threads)
        self.load_max = max(self.load_max, os.getloadavg()[0])
        self.n += 1


class ClientNicer(Periodic):
    """Lowers the priority of this script's descendants (Playwright's driver,
    Chromium and every renderer it starts) to niceness `nice`, so the server
    goes first on shared cores: as if the users' browsers ran elsewhere.

    Chromium starts each process in a session of its own, and the kernel's
    autogroups share the CPU fairly between sessions before niceness counts:
    so each process's autogroup is set to `nice` as well.
    """

    def __init__(self, server_pid: int, nice: int, interval: float = 0.2):
        super().__init__(interval)
        self.server_pid, self.nice = server_pid, nice
        self.done: set[int] = set()

    def tick(self) -> None:
        server = set(process_tree(self.server_pid))
        for p in process_tree(os.getpid()):
            if p in server or p in self.done:
                continue
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, p, self.nice)
                Path(f"/proc/{p}/autogroup").write_text(str(self.nice))
                self.done.add(p)


class CpuClock:
    """CPU seconds so far of the server's tree, of this process's other
    descendants (Playwright's driver and Chromium) and of the whole machine."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid

    def __call__(self) -> dict:
        server = set(process_tree(self.server_pid))
        client = [p for p in process_tree(os.getpid()) if p not in server]
        busy, total = machine_cpu()
        return {
            "t": time.perf_counter(),
            "server": cpu_seconds(list(server)),
            "client": cpu_seconds(client),
            "busy": busy,
            "total": total,
        }


def cpu_between(a: dict, b: dict) -> dict:
    server, client = b["server"] - a["server"], b["client"] - a["client"]
    busy = b["busy"] - a["busy"]
    return {
        "wall_s": round(b["t"] - a["t"], 2),
        "server_cpu_s": round(server, 2),
        "client_cpu_s": round(client, 2),
        "other_cpu_s": round(max(busy - server - client, 0.0), 2),
        "machine_busy_fraction": round(busy / max(b["total"] - a["total"], 1e-9), 3),
    }
