"""Step 3: execute a notebook in a sandboxed process tree and collect what it recorded.

Each execution gets a fresh working directory holding only its notebook, a clean
environment, resource limits (memory, CPU time, file size, processes), a wall-clock limit
for the whole notebook and a timeout per cell. Jobs and outcomes are plain data, so the
same function runs in a local worker thread or on a remote Dask worker.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from autograder import gpu_memory, sandbox
from autograder.checks import ENV_VAR
from autograder.config import Limits
from autograder.jobfiles import (
    MAX_JOB_NODES,
    MAX_RECORD_BYTES,
    MAX_RECORDS,
    TamperedFileError,
    json_nodes,
    parse_record_line,
    read_job_file,
)

# What the runner writes through descriptors the grader opened (see autograder.runner),
# and the one file the grader gives it to read.
PRIVATE_FILES = {"input": "input.ipynb", "notebook": "output.ipynb", "records": "records.jsonl", "status": "status.json"}


@dataclass
class ExecutionJob:
    """Everything needed to execute one notebook, as plain data."""

    notebook: str  # notebook JSON
    parameters: dict[str, Any]
    limits: Limits = field(default_factory=Limits)
    gpu: int | None = None  # index of the GPU this job may see, None for none
    label: str = ""
    threads: int | None = None  # CPU threads for torch/BLAS, so workers do not oversubscribe
    own_work: bool = False  # a student checking their own notebook (validate): no warning about isolation


@dataclass
class ExecutionOutcome:
    """What happened: ``status`` is ok, timeout, kernel_died, killed (retried: may be the
    machine's fault), over_limit (stopped by a limit the grader watches, such as GPU
    memory; not retried), runner_error or tampered."""

    status: str
    message: str
    notebook: str | None  # executed notebook JSON (partial if the run was cut short)
    records: list[dict[str, Any]]  # check() records, arrays inlined as .npy bytes
    seconds: float
    host: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


COURSE_ROOT = Path(__file__).resolve().parents[1]  # where lib/ and autograder/ live
_running: set[int] = set()  # root pids of the jobs this process is running now
_running_lock = threading.Lock()


def stop_running_jobs() -> None:
    """Kill every job this process is running (an interrupted ``grade``): sandboxed jobs
    have their own session, so Ctrl-C in the terminal does not reach them."""
    with _running_lock:
        pids = list(_running)
    for pid in pids:
        _kill_tree(pid, pid)


def isolated(warn: bool = True) -> bool:
    """Whether submissions run in namespaces as an unprivileged user; warns once when not."""
    available = _isolation_available()
    if not available and warn:
        _warn_no_isolation()
    return available


@functools.cache
def _isolation_available() -> bool:
    return os.environ.get("AUTOGRADER_NO_ISOLATION") != "1" and sandbox.isolation_available()


@functools.cache
def _warn_no_isolation() -> None:
    print(
        "WARNING: the autograder is not running as root (or this kernel refuses namespaces): "
        "submissions run with resource limits only, WITHOUT network, filesystem or user "
        "isolation. Grade untrusted work as root on a dedicated machine.",
        file=sys.stderr,
        flush=True,
    )


def _limit_resources(limits: Limits, gpu: bool, cgroup: sandbox.Cgroup | None) -> None:
    """Runs in the child between fork and exec: apply the per-submission limits."""
    if cgroup is not None:
        cgroup.add(os.getpid())  # before exec, so every descendant is in the group
    os.setsid()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes))
    if not gpu:  # CUDA maps far more address space than it uses; GPUs rely on the cgroup
        # With a memory cgroup the real limit is there; address space is only a backstop
        # (torch's libraries map several GiB they never touch).
        space = limits.memory_bytes * (4 if cgroup is not None and cgroup.limits_memory else 1)
        resource.setrlimit(resource.RLIMIT_AS, (space, space))
    if os.getuid() != 0:  # RLIMIT_NPROC is not enforced for root (the sandbox sets it after dropping)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))


def _gpu_startup(workdir: Path, fraction: float) -> None:
    """An IPython startup file for kernels that see a GPU: cap torch's share of a shared
    GPU, and make CUDA deterministic, so that the same answers record the same values as
    the solution's run (cuBLAS may otherwise pick kernels whose sums differ run to run)."""
    startup = workdir / "home" / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-gpu.py").write_text(
        "import torch\n"
        "if torch.cuda.is_available():\n"
        f"    torch.cuda.set_per_process_memory_fraction({fraction!r})\n"
        "    torch.backends.cudnn.benchmark = False\n"
        "    torch.backends.cudnn.deterministic = True\n"
        "    torch.use_deterministic_algorithms(True, warn_only=True)\n"
    )


def _environment(workdir: Path, job: ExecutionJob) -> dict[str, str]:
    """A clean environment: nothing of the grader's own variables leaks into the sandbox."""
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "PATH": os.pathsep.join([bin_dir, "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(workdir / "home"),
        "TMPDIR": str(workdir / "tmp"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "JUPYTER_DATA_DIR": str(workdir / "home" / ".jupyter"),
        "IPYTHONDIR": str(workdir / "home" / ".ipython"),
        "MPLCONFIGDIR": str(workdir / "tmp" / "matplotlib"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
        # The runner and the kernel import this grader's autograder/ and lib/ (the copy the
        # sandbox keeps visible), not whichever copy the environment's install points to.
        "PYTHONPATH": str(COURSE_ROOT),
        ENV_VAR: str(workdir / "checks"),
        "CUDA_VISIBLE_DEVICES": "" if job.gpu is None else str(job.gpu),
    }
    if job.gpu is not None:
        env["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"  # deterministic cuBLAS (see _gpu_startup)
    if os.environ.get("COURSE_DATA_DIR"):
        env["COURSE_DATA_DIR"] = os.environ["COURSE_DATA_DIR"]
    if job.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(job.threads)
    source = job.parameters.get("data_source")
    if isinstance(source, str):
        env["COURSE_DATA_SOURCE"] = source
    return env


def _job_processes(root_pid: int, session: int | None) -> list[psutil.Process]:
    """The runner, its kernel and everything they started (kernels get their own session)."""
    found: list[psutil.Process] = []
    try:
        root = psutil.Process(root_pid)
        found = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        pass
    for proc in psutil.process_iter(["pid"]):
        try:
            if session is not None and os.getsid(proc.pid) == session:
                found.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def _kill_tree(root_pid: int, session: int | None) -> None:
    """Kill every process of the job (see :func:`_job_processes`)."""
    victims = _job_processes(root_pid, session)
    for proc in victims:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(victims, timeout=5)


def read_records(raw: bytes | None) -> list[dict[str, Any]]:
    """The runner's records file (see :class:`~autograder.jobfiles.RecordCollector`), parsed
    defensively (its values came from the notebook): arrays back to ``.npy`` bytes."""
    records: list[dict[str, Any]] = []
    nodes = MAX_JOB_NODES  # the runner kept to it; a grader reading the file again does too
    for line in (raw or b"").split(b"\n"):
        nodes -= json_nodes(line)
        if nodes < 0 or len(records) >= MAX_RECORDS:
            break
        record = parse_record_line(line)
        if record is None or not isinstance(record.get("cell"), int):
            continue
        try:
            value = _decode_arrays(record["value"])
        except (TypeError, ValueError, binascii.Error, RecursionError):
            continue
        criteria = record.get("criteria")
        records.append({"name": str(record["name"]), "value": value, "cell": record["cell"],
                        "criteria": criteria if isinstance(criteria, dict) else {}})
    return records


def _decode_arrays(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("a record's value must be an object")
    if "npy_base64" in value:
        value = {**value, "npy": base64.b64decode(str(value["npy_base64"]), validate=True)}
        del value["npy_base64"]
    if value.get("kind") == "sequence":
        items = value.get("items")
        value = {**value, "items": [_decode_arrays(v) for v in (items if isinstance(items, list) else [])]}
    return value


def _read_private(path: Path, limit: int) -> bytes:
    """A file of the grader's own that the runner wrote through a descriptor (at most ``limit`` bytes)."""
    with open(path, "rb") as f:
        return f.read(limit)


def execute(job: ExecutionJob) -> ExecutionOutcome:
    """Run ``job`` in a fresh sandbox and return its outcome (never raises for bad notebooks)."""
    limits = job.limits
    workdir = Path(tempfile.mkdtemp(prefix="autograder-"))
    # The grader's own files for this job (the grader's user only): the runner reads the
    # notebook and writes its results through descriptors opened here.
    private = Path(tempfile.mkdtemp(prefix="autograder-private-"))
    start = time.monotonic()
    lease = cgroup = spec_file = None
    fds: dict[str, int] = {}
    isolate = isolated(warn=not job.own_work)
    try:
        if isolate:  # the job's own files live in RAM, capped: no submission can fill the disk
            sandbox.mount_scratch(workdir, 2 * limits.max_notebook_bytes + limits.max_output_bytes + MAX_RECORD_BYTES + 2**26)
        for sub in ("work", "home", "tmp", "runtime", "checks"):
            (workdir / sub).mkdir()
        (private / PRIVATE_FILES["input"]).write_text(job.notebook, encoding="utf-8")
        fds = {name: os.open(private / file, os.O_RDONLY) if name == "input" else
               os.open(private / file, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if name == "records" else 0), 0o600)
               for name, file in PRIVATE_FILES.items()}
        (workdir / "job.json").write_text(json.dumps({
            "parameters": job.parameters,
            "cell_timeout": limits.cell_timeout,
            "max_cell_output_bytes": limits.max_cell_output_bytes,
            "max_output_bytes": limits.max_output_bytes,
            "max_file_bytes": limits.max_file_bytes,
            "fds": fds,
        }))
        if job.gpu is not None:
            _gpu_startup(workdir, limits.gpu_memory_fraction)
        env = _environment(workdir, job)
        command = [sys.executable, "-m", "autograder.runner", str(workdir)]
        if isolate:
            lease = sandbox.UidLease()
            cgroup = sandbox.Cgroup(workdir.name, limits.memory_bytes, limits.max_processes)
            for path in [workdir, *workdir.rglob("*")]:
                os.chown(path, lease.uid, lease.uid)
            workdir.chmod(0o700)
            extra = [Path(env["COURSE_DATA_DIR"])] if env.get("COURSE_DATA_DIR") else []
            hide, keep = sandbox.jail_paths(COURSE_ROOT, extra)
            fd, name = tempfile.mkstemp(prefix="autograder-sandbox-", suffix=".json")
            spec_file = Path(name)
            with os.fdopen(fd, "w") as f:
                json.dump({"workdir": str(workdir), "hide": [str(p) for p in hide], "keep": [str(p) for p in keep],
                           "uid": lease.uid, "env": env, "scratch_bytes": limits.scratch_bytes,
                           "limits": {"max_processes": limits.max_processes}}, f)
            command = [*sandbox.UNSHARE, "--mount-proc", "--kill-child",
                       sys.executable, "-m", "autograder.sandbox", str(spec_file)]
        log = open(workdir / "runner.log", "wb")
        proc = subprocess.Popen(
            command,
            cwd=workdir / "work",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=tuple(fds.values()),
            preexec_fn=lambda: _limit_resources(limits, job.gpu is not None, cgroup),
        )
        for fd in fds.values():
            os.close(fd)
        fds = {}
        with _running_lock:
            _running.add(proc.pid)
        status, message = "ok", ""
        watch = gpu_memory.GpuMemoryWatch(
            limits.gpu_memory_bytes, lambda: [p.pid for p in _job_processes(proc.pid, proc.pid)],
            lambda: _kill_tree(proc.pid, proc.pid)) if job.gpu is not None else None
        try:
            with watch or contextlib.nullcontext():
                proc.wait(timeout=limits.notebook_timeout)
        except subprocess.TimeoutExpired:
            status = "timeout"
            message = f"the notebook ran longer than its limit of {limits.notebook_timeout:.0f} s and was stopped"
        finally:
            _kill_tree(proc.pid, proc.pid)
            proc.wait()
            log.close()
            with _running_lock:
                _running.discard(proc.pid)
        if watch is not None and watch.exceeded:
            status, message = "over_limit", watch.exceeded
        tampered: list[str] = []

        def read_back(relative: str, limit: int, tail: bool = False) -> bytes | None:
            try:
                return read_job_file(workdir, relative, limit, tail)
            except TamperedFileError as exc:
                tampered.append(str(exc))
                return None

        reported = _read_private(private / PRIVATE_FILES["status"], 2**16)
        if status == "ok":
            try:
                report = json.loads(reported) if reported else None
                if report is not None:
                    status, message = str(report["status"]), str(report.get("message", ""))
                    tampered += [str(t) for t in report.get("tampered", [])]
            except (ValueError, TypeError, KeyError, AttributeError):
                report = None
            if report is None:
                status = "killed"
                message = f"the grading process was killed (exit status {proc.returncode})"
                if job.own_work:  # the kernel writes to this log too: text for the student only when no hidden test ran
                    log = (read_back("runner.log", 4096, tail=True) or b"").decode("utf-8", errors="replace")
                    message += "; " + _tail(log)
        if cgroup is not None and cgroup.oom_killed():
            message = f"{message} (the submission exceeded its memory limit of {limits.memory_bytes / 2**30:.1f} GiB)"
        output = _read_private(private / PRIVATE_FILES["notebook"], limits.max_notebook_bytes + limits.max_output_bytes)
        notebook = output.decode("utf-8", errors="replace") if output else None
        records = read_records(_read_private(private / PRIVATE_FILES["records"], 2 * MAX_RECORD_BYTES))
        if tampered:
            status = "tampered"
            message = "the submission tampered with the grader's files: " + "; ".join(tampered)
        return ExecutionOutcome(status, message, notebook, records, time.monotonic() - start, os.uname().nodename)
    finally:
        for fd in fds.values():
            os.close(fd)
        if isolate:
            sandbox.unmount_scratch(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
        if spec_file is not None:
            spec_file.unlink(missing_ok=True)
        if cgroup is not None:
            cgroup.remove()
        if lease is not None:
            lease.release()


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])[-1000:]
