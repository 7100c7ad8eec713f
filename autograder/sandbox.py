"""Isolation of one submission's process tree (Linux, when the grader runs as root).

``execute`` starts ``unshare --net --mount --pid --ipc --fork --mount-proc --kill-child python
-m autograder.sandbox ...``. Inside the new namespaces this module, still root:

1. hides everything but the system: a tmpfs over the course root and over every
   top-level folder other than the system's own (``/home``, ``/srv``, ``/opt``, ...), with
   only ``lib/``, ``autograder/`` and the Python environment bound back (read-only), so
   solutions, hidden tests, the gradebook, other submissions, ``.git`` and any other copy
   of them on the machine are out of reach;
2. gives the job private, size-limited ``/tmp``, ``/var/tmp`` and ``/dev/shm`` and binds
   its own working directory at ``/tmp/job`` (other jobs' directories are invisible); that
   directory is itself a size-limited tmpfs (:func:`mount_scratch`), so no write reaches
   the grader's disk; the grader reads nothing it scores from there (the runner writes its
   results through descriptors the grader opened, see :mod:`autograder.runner`);
3. brings up loopback only (the kernel talks to papermill over it; nothing else is
   reachable) and mounts a fresh ``/proc`` (the grader's processes and their
   environments cannot be read); System V shared memory, semaphores and message queues
   are the job's own and vanish with it (a segment left behind would otherwise hold the
   host's memory until reboot and pass data to the next job of the same uid);
4. drops to an unprivileged uid of its own, applies the resource limits and execs the
   runner, which is PID 1 of the namespace: when it ends, everything it started ends.

Without root (an instructor's laptop), :func:`isolation_available` is False and the
grader says so once, loudly; submissions then run with resource limits only.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

UID_BASE = 61000  # sandbox uids 61000-61999: one per concurrently running job
UID_COUNT = 1000
JOB_DIR = Path("/tmp/job")
LOCK_DIR = Path("/run/lock/autograder") if Path("/run/lock").is_dir() else Path("/tmp/.autograder-locks")
UNSHARE = ["unshare", "--net", "--mount", "--pid", "--ipc", "--fork"]  # the namespaces of a job


def isolation_available() -> bool:
    """Root, util-linux ``unshare`` and namespaces that can actually be created here."""
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True)
    return probe.returncode == 0


class UidLease:
    """An unused sandbox uid, held (with a file lock) while its job runs."""

    def __init__(self) -> None:
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        for uid in range(UID_BASE, UID_BASE + UID_COUNT):
            handle = open(LOCK_DIR / f"{uid}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self.uid, self._handle = uid, handle
            return
        raise RuntimeError("all sandbox uids are in use")

    def release(self) -> None:
        self._handle.close()


class Cgroup:
    """A memory + pids group for one job, where the kernel lets the grader make one.

    cgroup v2 (the unified hierarchy of current distributions: ``memory.max``, swap off,
    ``pids.max``) when ``/sys/fs/cgroup`` is one, else the v1 ``memory`` and ``pids``
    controllers. Where neither can be made (a container without a writable cgroup tree)
    the job runs with rlimits only and :attr:`limits_memory` is False.
    """

    ROOT = Path("/sys/fs/cgroup")
    PARENT = "autograder"

    def __init__(self, name: str, memory_bytes: int, max_pids: int, root: Path | None = None) -> None:
        root = root or self.ROOT
        self.dirs: list[Path] = []
        self.limits_memory = False
        self.unified = (root / "cgroup.controllers").is_file()
        if self.unified:
            self._make_unified(root, name, memory_bytes, max_pids)
            return
        for controller, settings in (
            ("memory", {"memory.limit_in_bytes": memory_bytes, "memory.memsw.limit_in_bytes": memory_bytes}),
            ("pids", {"pids.max": max_pids}),
        ):
            path = root / controller / self.PARENT / name
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError:
                continue
            for key, value in settings.items():
                try:
                    (path / key).write_text(str(value))
                except OSError:
                    pass  # e.g. no swap accounting: memsw is absent
            self.dirs.append(path)
            self.limits_memory |= controller == "memory"

    def _make_unified(self, root: Path, name: str, memory_bytes: int, max_pids: int) -> None:
        parent = root / self.PARENT
        try:
            parent.mkdir(exist_ok=True)
            path = parent / name
            path.mkdir(exist_ok=True)
        except OSError:
            return
        # Controllers reach a group only when every ancestor delegates them; the parent
        # holds no process itself, as v2 requires of a group that delegates.
        for group in (root, parent):
            for controller in ("+memory", "+pids"):
                try:
                    (group / "cgroup.subtree_control").write_text(controller)
                except OSError:
                    pass  # not offered here: the limit below cannot be set either
        self.dirs.append(path)
        for key, value in (("memory.max", memory_bytes), ("memory.swap.max", 0), ("pids.max", max_pids)):
            try:
                (path / key).write_text(str(value))
            except OSError:
                continue  # memory.swap.max is absent without swap accounting
            self.limits_memory |= key == "memory.max"

    def add(self, pid: int) -> None:
        for path in self.dirs:
            try:
                (path / "cgroup.procs").write_text(str(pid))
            except OSError:
                pass

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the group for going over its memory limit."""
        for path in self.dirs:
            for events in ("memory.events", "memory.oom_control"):  # v2, v1
                try:
                    counters = dict(line.split() for line in (path / events).read_text().splitlines() if " " in line)
                except (OSError, ValueError):
                    continue
                if int(counters.get("oom_kill", 0)) > 0:
                    return True
        return False

    def remove(self) -> None:
        for path in self.dirs:
            try:
                path.rmdir()
            except OSError:
                pass


SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")  # replaced by private, size-capped tmpfs


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def mount_scratch(path: Path, size_bytes: int) -> None:
    """A size-capped tmpfs at ``path`` (in the grader's namespace; its pages are charged
    to the memory cgroup of the job that writes them)."""
    _mount("-t", "tmpfs", "-o", f"size={size_bytes},mode=700", "tmpfs", str(path))


def unmount_scratch(path: Path) -> None:
    subprocess.run(["umount", "--lazy", str(path)], capture_output=True)


def _loopback_up() -> None:
    """``ip link set lo up`` without needing iproute2: the kernel talks to papermill over it."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, b""))


def _bind_back(fd: int, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    _mount("--no-canonicalize", "--bind", f"/proc/{os.getpid()}/fd/{fd}", str(target))
    _mount("-o", "remount,bind,ro", str(target))


SYSTEM_DIRS = frozenset({"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "dev", "proc", "sys", "tmp", "nix"})


def jail_paths(course_root: Path, extra_keep: list[Path]) -> tuple[list[Path], list[Path]]:
    """(hide, keep): what to cover with an empty tmpfs, and what to bind back read-only.

    Hidden: every top-level folder but the system's own (``/usr``, ``/etc``, ``/lib``, ...),
    so that ``/home``, ``/srv``, ``/opt``, ``/work``, ``/var`` and wherever else copies of
    solutions or other courses may lie are out of reach, not just this course; also the
    course root and the grader's home, and every ancestor of a kept path that others may
    not enter (such as ``/root``), which the unprivileged sandbox user could not traverse.
    Kept: the course's ``lib`` and ``autograder``, the Python environment and the Python
    installation it was made from, and any data cache.
    """
    keep = [course_root / "lib", course_root / "autograder", Path(sys.prefix), Path(sys.base_prefix), *extra_keep]
    keep = [p.resolve() for p in keep if p.exists()]
    hide = {course_root.resolve(), Path.home().resolve()}
    for entry in os.scandir("/"):
        # Symlinks (/lib -> usr/lib on merged-/usr systems) are never mounted over: the
        # mount would land on their target.
        if entry.name not in SYSTEM_DIRS and entry.is_dir(follow_symlinks=False):
            hide.add(Path(entry.path))
    for path in keep:
        for parent in path.parents:
            if parent != Path("/") and not (parent.stat().st_mode & 0o001):
                hide.add(parent)
    ordered: list[Path] = []
    for path in sorted(hide, key=lambda p: len(p.parts)):
        if path != Path("/") and not any(h in path.parents for h in ordered):
            ordered.append(path)
    return ordered, sorted(set(keep), key=lambda p: len(p.parts))


def enter(spec: dict) -> None:
    """Runs as root inside the new namespaces: build the jail, drop privileges, exec the runner."""
    _mount("--make-rprivate", "/")
    workdir = Path(spec["workdir"])
    hide = [Path(p) for p in spec["hide"]]
    keep = [Path(p) for p in spec["keep"]]
    fds = {path: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in [workdir, *keep]}
    for path in hide:
        _mount("-t", "tmpfs", "-o", "size=16m,mode=755", "tmpfs", str(path))
    scratch = f"size={spec['scratch_bytes']},mode=1777"
    private = [Path(tmp) for tmp in SCRATCH_DIRS if Path(tmp).is_dir()]
    for tmp in private:
        _mount("-t", "tmpfs", "-o", scratch, "tmpfs", str(tmp))
    # After the covering mounts: a kept path under /tmp (a course cloned there) survives too.
    covered = hide + private
    for path in keep:
        if any(c == path or c in path.parents for c in covered):
            _bind_back(fds[path], path)
    JOB_DIR.mkdir(parents=True, exist_ok=True)
    _mount("--no-canonicalize", "--bind", f"/proc/{os.getpid()}/fd/{fds[workdir]}", str(JOB_DIR))
    # The notebook's own scratch space: whatever it writes there cannot crowd out the
    # records (checks/) the runner collects after each cell.
    for sub in ("work", "tmp"):
        _mount("-t", "tmpfs", "-o", scratch, "tmpfs", str(JOB_DIR / sub))
    for fd in fds.values():
        os.close(fd)
    _loopback_up()

    uid = int(spec["uid"])
    limits = spec["limits"]
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["max_processes"], limits["max_processes"]))
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    os.chdir(JOB_DIR / "work")
    env = {k: v.replace(str(workdir), str(JOB_DIR)) for k, v in spec["env"].items()}
    os.execve(sys.executable, [sys.executable, "-m", "autograder.runner", str(JOB_DIR)], env)


def main() -> None:
    enter(json.loads(Path(sys.argv[1]).read_text()))


if __name__ == "__main__":
    main()
