"""The GPU-memory watchdog (issue 7): the driver's accounting, not torch's liftable fraction.

Without a GPU the driver is replaced by a reader that reports what a GPU would; the
``gpu`` test at the end lets a real submission lift torch's guard on a real GPU.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from autograder import gpu_memory
from autograder.config import Limits
from autograder.execute import ExecutionJob, execute
from autograder.gpu_memory import GpuMemoryWatch, parse_compute_apps, read_gpu_memory
from tests.autograder.conftest import SUBMISSIONS, make_course, submit

GiB = 2**30


def test_parse_nvidia_smi_rows():
    text = "1234, 512\n77, [N/A]\n\n1234, 256\nNo running processes found\n99, 1\n"
    assert parse_compute_apps(text) == {1234: 768 * 2**20, 99: 2**20}  # one process on two GPUs: summed


def test_no_nvidia_smi_reads_none(monkeypatch):
    monkeypatch.setattr(gpu_memory, "QUERY", ["/nonexistent/nvidia-smi"])
    assert read_gpu_memory() is None


def _fake_nvidia_smi(tmp_path, output: str, status: int = 0):
    """An ``nvidia-smi`` that prints ``output`` and exits with ``status``; returns its log of calls."""
    log = tmp_path / "calls"
    script = tmp_path / "nvidia-smi"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\nprintf '{output}'\nexit {status}\n")
    script.chmod(0o755)
    return script, log


def test_the_driver_is_asked_for_each_process_and_its_memory(tmp_path, monkeypatch):
    script, log = _fake_nvidia_smi(tmp_path, "4242, 1024\\n17, 3\\n")
    monkeypatch.setattr(gpu_memory, "QUERY", [str(script), *gpu_memory.QUERY[1:]])
    assert read_gpu_memory() == {4242: GiB, 17: 3 * 2**20}
    assert log.read_text() == "--query-compute-apps=pid,used_memory --format=csv,noheader,nounits\n"
    failing, _ = _fake_nvidia_smi(tmp_path, "4242, 1024\\n", status=9)  # a driver error: no reading
    monkeypatch.setattr(gpu_memory, "QUERY", [str(failing)])
    assert read_gpu_memory() is None


def test_a_new_grader_takes_its_first_reading_at_once(tmp_path, monkeypatch):
    """The shared reading starts out stale, so the first watch of a grader reads the driver."""
    import importlib

    script, log = _fake_nvidia_smi(tmp_path, "7, 2\\n")
    fresh = importlib.reload(gpu_memory)
    try:
        monkeypatch.setattr(fresh, "QUERY", [str(script)])
        assert fresh.recent_gpu_memory(3600) == {7: 2 * 2**20}
        assert fresh.recent_gpu_memory(3600) == {7: 2 * 2**20} and len(log.read_text().splitlines()) == 1
    finally:
        importlib.reload(gpu_memory)


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _watch(proc: subprocess.Popen, limit: int, used: int | None) -> GpuMemoryWatch:
    return GpuMemoryWatch(limit, lambda: [proc.pid], proc.kill, interval=0.05,
                          read=lambda: None if used is None else {proc.pid: used, 1: 100 * GiB})


def test_a_job_over_its_limit_is_stopped_with_the_reason(sleeper):
    start = time.monotonic()
    with _watch(sleeper, 2 * GiB, 3 * GiB) as watch:
        sleeper.wait(timeout=10)
    assert time.monotonic() - start < 5
    assert watch.exceeded == "the submission used 3.00 GiB of GPU memory, over its limit of 2.00 GiB, and was stopped"


def test_a_job_under_its_limit_runs_on(sleeper):
    with _watch(sleeper, 2 * GiB, GiB) as watch:  # the other process's 100 GiB is not the job's
        time.sleep(0.3)
    assert sleeper.poll() is None and watch.exceeded is None and watch.peak_bytes == GiB


def test_a_job_exactly_at_its_limit_runs_on(sleeper):
    with _watch(sleeper, 2 * GiB, 2 * GiB) as watch:
        time.sleep(0.3)
    assert sleeper.poll() is None and watch.exceeded is None and watch.peak_bytes == 2 * GiB


def test_without_a_reading_it_warns_once_and_stops_watching(sleeper, monkeypatch, capsys):
    monkeypatch.setattr(gpu_memory, "_warned", False)
    for _ in range(2):
        with _watch(sleeper, GiB, None) as watch:
            time.sleep(0.2)
    assert sleeper.poll() is None and watch.exceeded is None
    assert capsys.readouterr().err.count("nvidia-smi cannot be read") == 1


def _hog_job(limit: int) -> ExecutionJob:
    notebook = (SUBMISSIONS / "attack_gpu_memory_hog.ipynb").read_text()
    parameters = {"device": "cpu", "seed": 0, "data_source": "offline", "quick": True}
    return ExecutionJob(notebook, parameters, Limits(notebook_timeout=120, gpu_memory_bytes=limit), gpu=0)


@pytest.mark.slow
def test_execute_stops_a_gpu_job_whose_processes_hold_too_much(monkeypatch):
    """A driver that says every process of the machine holds 1 GiB: the job's kernel is over."""
    monkeypatch.setattr(gpu_memory, "read_gpu_memory", lambda: {pid: GiB for pid in psutil.pids()})
    monkeypatch.setattr(gpu_memory, "_last_reading", (float("-inf"), None))  # no reading of another test
    outcome = execute(_hog_job(GiB // 2))
    assert outcome.status == "over_limit"  # not "killed", which the grader retries
    assert "GiB of GPU memory, over its limit of 0.50 GiB, and was stopped" in outcome.message
    assert outcome.seconds < 60  # stopped, not left to sleep through its notebook


@pytest.mark.slow
def test_execute_leaves_a_gpu_job_under_its_limit_alone(monkeypatch):
    monkeypatch.setattr(gpu_memory, "read_gpu_memory", lambda: {pid: 2**20 for pid in psutil.pids()})
    monkeypatch.setattr(gpu_memory, "_last_reading", (float("-inf"), None))  # no reading of another test
    outcome = execute(_hog_job(GiB))
    assert outcome.status == "ok", outcome.message


@pytest.mark.gpu
@pytest.mark.slow
def test_a_real_submission_that_lifts_torchs_guard_is_stopped(tmp_path):
    """On a GPU: the hog lifts torch's fraction and takes 4 GiB; the driver's count stops it.
    (2 GiB leaves room for the CUDA context, about 0.5 GiB, of the honest runs.)"""
    from autograder.config import Course
    from autograder.grade import GradeOptions, grade

    base = make_course(tmp_path / "course")
    course = Course(base.root, limits=Limits(cell_timeout=60, notebook_timeout=180, gpu_memory_bytes=2 * GiB))
    submit(course, "hog", "attack_gpu_memory_hog")
    submit(course, "honest", "correct")
    report = grade(course, "tiny", GradeOptions(device="cuda", progress=False))
    results = {r.student: r for r in report.results}
    assert results["honest"].score == 5.0
    assert results["hog"].status == "problem"
    assert any("GPU memory, over its limit of 2.00 GiB" in p for p in results["hog"].problems)


def test_concurrent_watches_share_one_reading(monkeypatch):
    calls = []
    monkeypatch.setattr(gpu_memory, "read_gpu_memory", lambda: calls.append(1) or {})
    monkeypatch.setattr(gpu_memory, "_last_reading", (float("-inf"), None))
    assert [gpu_memory.recent_gpu_memory(60) for _ in range(5)] == [{}] * 5
    assert len(calls) == 1
    gpu_memory.recent_gpu_memory(0)
    assert len(calls) == 2


@pytest.mark.slow
def test_a_stopped_job_is_recorded_once_not_retried(tmp_path, monkeypatch):
    """The grader retries "killed" jobs (a worker may die for reasons of its own); a job the
    watch stopped is the submission's doing: one run, the reason in its problems."""
    from autograder import grade as grade_module
    from autograder.execute import ExecutionOutcome
    from autograder.grade import GradeOptions, grade

    runs = []

    def watched(job: ExecutionJob) -> ExecutionOutcome:
        outcome = execute(job)
        if "hoard" in job.notebook:  # what the watch reports when a GPU hog is stopped
            runs.append(job.label)
            outcome = ExecutionOutcome("over_limit", "the submission used 4.00 GiB of GPU memory, over its limit "
                                       "of 2.00 GiB, and was stopped", outcome.notebook, outcome.records, 1.0)
        return outcome

    monkeypatch.setattr(grade_module, "execute", watched)
    course = make_course(tmp_path / "course")
    submit(course, "hog", "attack_gpu_memory_hog")
    submit(course, "honest", "partly_wrong")
    results = {r.student: r for r in grade(course, "tiny", GradeOptions(workers=2, progress=False)).results}
    assert len(runs) == 1
    assert results["hog"].status == "problem"
    assert results["hog"].problems == ["the submission used 4.00 GiB of GPU memory, over its limit of 2.00 GiB, "
                                       "and was stopped"]
    assert results["honest"].status == "graded" and results["honest"].score == 3.5
