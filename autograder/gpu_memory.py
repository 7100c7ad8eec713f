"""A hard GPU-memory limit per submission: a watchdog that reads the driver's accounting.

torch's ``set_per_process_memory_fraction`` (set by the grader's kernel start-up file) is a
guard the student's own code can lift. The driver's accounting cannot be lifted from inside
the job: :class:`GpuMemoryWatch` reads, about once a second, how much GPU memory every
process on the machine holds (``nvidia-smi --query-compute-apps``), adds up the job's
processes and stops the job when the sum passes its limit. Being a poll, it can miss a
burst shorter than a second; MIG partitions or one GPU per worker are the only walls that
also hold within a second. Without ``nvidia-smi`` the watch says so once and does nothing.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable

QUERY = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
_warned = False
_reading_lock = threading.Lock()
_last_reading: tuple[float, dict[int, int] | None] = (-math.inf, None)


def parse_compute_apps(text: str) -> dict[int, int]:
    """``nvidia-smi`` CSV lines ``pid, MiB`` -> bytes per pid (summed over GPUs; rows it
    cannot account, such as ``[N/A]`` under MIG on older drivers, are skipped)."""
    usage: dict[int, int] = {}
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2 or not fields[0].isdigit() or not fields[1].isdigit():
            continue
        pid, mib = int(fields[0]), int(fields[1])
        usage[pid] = usage.get(pid, 0) + mib * 2**20
    return usage


def read_gpu_memory() -> dict[int, int] | None:
    """Bytes of GPU memory held by each process on this machine; ``None`` if unreadable."""
    try:
        result = subprocess.run(QUERY, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_compute_apps(result.stdout) if result.returncode == 0 else None


def recent_gpu_memory(max_age: float) -> dict[int, int] | None:
    """:func:`read_gpu_memory`, shared by the watches of one grader: each ``nvidia-smi`` call
    costs tens of milliseconds of CPU, so concurrent jobs reuse a reading up to ``max_age`` s old."""
    global _last_reading
    with _reading_lock:
        if time.monotonic() - _last_reading[0] > max_age:
            _last_reading = (time.monotonic(), read_gpu_memory())
        return _last_reading[1]


class GpuMemoryWatch:
    """Stops a job whose processes together hold more than ``limit_bytes`` of GPU memory.

    ``job_pids()`` lists the job's current processes; ``stop()`` kills them. After the job
    ends, :attr:`exceeded` is the reason to record (``None`` if the job stayed under).
    """

    def __init__(self, limit_bytes: int, job_pids: Callable[[], Iterable[int]], stop: Callable[[], None],
                 interval: float = 1.0, read: Callable[[], dict[int, int] | None] | None = None) -> None:
        self.limit_bytes, self.job_pids, self.stop_job = limit_bytes, job_pids, stop
        self.interval, self.read = interval, read
        self.exceeded: str | None = None
        self.peak_bytes = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-memory-watch", daemon=True)

    def __enter__(self) -> GpuMemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        global _warned
        while not self._done.wait(self.interval):
            usage = self.read() if self.read is not None else recent_gpu_memory(self.interval / 2)
            if usage is None:
                if not _warned:
                    _warned = True
                    print("WARNING: nvidia-smi cannot be read, so GPU memory per submission is capped only by "
                          "torch's per-process fraction, which a submission can lift.", file=sys.stderr, flush=True)
                return
            used = sum(usage.get(pid, 0) for pid in set(self.job_pids()))
            self.peak_bytes = max(self.peak_bytes, used)
            if used > self.limit_bytes:
                self.exceeded = (f"the submission used {used / 2**30:.2f} GiB of GPU memory, over its limit of "
                                 f"{self.limit_bytes / 2**30:.2f} GiB, and was stopped")
                self.stop_job()
                return
