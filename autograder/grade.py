"""``grade``: the pipeline that turns submissions into recorded grades.

For each submission, in this order:

1. load      read the file, or record why it cannot be read      (autograder.load)
2. assemble  tests from the source, answers from the student      (autograder.assemble)
             and the student's code read for tampering           (autograder.tamper)
3. execute   papermill in a sandbox, on a worker                  (autograder.execute)
4. score     compare records with the solution's, outside         (autograder.score)
5. record    gradebook + result JSON + executed notebook, at once (autograder.gradebook)

Steps 1, 2, 4 and 5 run in this (coordinating) process; step 3 runs on local worker
slots (one per GPU, else one per CPU core) or on a Dask cluster. Results are recorded as
soon as they arrive, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from tqdm import tqdm

from autograder.assemble import WrongAssignmentError, assemble, missing_answer_note
from autograder.cells import read_executed
from autograder.collect import submission_time
from autograder.config import Course
from autograder.execute import ExecutionJob, ExecutionOutcome, execute, stop_running_jobs
from autograder.gradebook import GradebookWriter
from autograder.load import SubmissionError, read_submission
from autograder.reference import reference_for
from autograder.release import release
from autograder.results import SubmissionResult
from autograder.score import answer_errors, score_cells, timed_out_cells
from autograder.source import Assignment, load_assignment
from autograder.tamper import review_problem, scan

MAX_ATTEMPTS = 3  # a submission whose runner is killed this often is recorded as failed


@dataclass
class GradeOptions:
    """What ``grade`` was asked to do."""

    students: list[str] | None = None
    device: str = "auto"  # auto, cpu or cuda
    workers: int | None = None
    scheduler: str | None = None  # Dask scheduler address
    force: bool = False
    seed: int = 0
    data_source: str = "offline"
    quick: bool = True
    progress: bool = True


@dataclass
class GradeReport:
    """What a grading run did."""

    assignment: str
    results: list[SubmissionResult] = field(default_factory=list)  # graded in this run
    unchanged: list[SubmissionResult] = field(default_factory=list)  # graded before, not rerun
    # student -> (score, written answers still to grade), from the gradebook after the run
    standings: dict[str, tuple[float, bool]] = field(default_factory=dict)

    @property
    def skipped(self) -> list[str]:
        return [r.student for r in self.unchanged]

    @property
    def problems(self) -> list[SubmissionResult]:
        """Submissions with problems, earlier runs' included: a rerun must not turn a failure green."""
        return [r for r in self.results + self.unchanged if r.status != "graded"]


def find_submissions(course: Course, assignment: str, students: list[str] | None) -> dict[str, Path | None]:
    """``student -> notebook path`` (None: the folder holds no single notebook) from
    ``submitted/<student>/<assignment>/``. A name in ``students`` without such a folder is
    an error: grading it would put a student who does not exist in the gradebook."""
    found: dict[str, Path | None] = {}
    root = course.submitted
    for student_dir in sorted(root.iterdir()) if root.is_dir() else []:
        folder = student_dir / assignment
        if not folder.is_dir() or (students and student_dir.name not in students):
            continue
        preferred = folder / f"{assignment}.ipynb"
        notebooks = sorted(folder.glob("*.ipynb"))
        found[student_dir.name] = preferred if preferred.exists() else (notebooks[0] if len(notebooks) == 1 else None)
    missing = sorted(set(students or []) - set(found))
    if missing:
        raise ValueError(f"no submission of {assignment!r} for {', '.join(missing)} "
                         f"(expected {root}/<student>/{assignment}/; check the names, or run collect first)")
    if not found:
        raise ValueError(f"no submissions of {assignment!r} under {root}/<student>/{assignment}/ (run collect first)")
    return found


def gpu_count(device: str) -> int:
    if device == "cpu":
        return 0
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "cuda" and count == 0:
        raise ValueError("--device cuda was asked for, but no CUDA GPU is visible here")
    return count


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class LocalWorkers:
    """Worker slots on this machine; each job runs in its own sandboxed process tree."""

    def __init__(self, workers: int, gpus: int) -> None:
        self.slots = list(range(workers))
        self.gpus = gpus
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grader")
        self.free = list(self.slots)

    def submit(self, job: ExecutionJob) -> Future:
        slot = self.free.pop(0)
        job.gpu = slot % self.gpus if self.gpus else None
        future = self.pool.submit(execute, job)
        future.slot = slot  # type: ignore[attr-defined]
        return future

    def release(self, future: Future) -> None:
        self.free.append(future.slot)  # type: ignore[attr-defined]

    def wait(self, futures: list[Future]) -> set[Future]:
        return wait(futures, return_when=FIRST_COMPLETED).done

    @property
    def capacity(self) -> int:
        return len(self.slots)

    @property
    def threads(self) -> int:
        """CPU threads per notebook: each gets its share of the cores, on GPU runners too
        (data loading, CPU ops)."""
        return max(1, (os.cpu_count() or 1) // self.capacity)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskWorkers:
    """The same jobs on a Dask cluster; GPU workers declare ``--resources GPU=1``.

    ``device``: ``cuda`` sends every job to a GPU worker, ``cpu`` to any worker, and
    ``auto`` does the first when some worker declares a GPU (the others then stay idle).
    """

    def __init__(self, address: Any, device: str) -> None:
        from distributed import Client

        self.owned = not hasattr(address, "submit")  # a Client made here is closed here
        try:
            self.client = Client(address) if self.owned else address
        except (OSError, TimeoutError) as exc:  # a configuration error (exit 2), not a grading problem
            raise ValueError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        try:  # distributed 2025.4 to 2026.6 list 5 workers unless asked for all
            info = self.client.scheduler_info(n_workers=-1)
        except TypeError:  # older releases list all and know no such argument
            info = self.client.scheduler_info()
        workers = info["workers"].values()
        gpu_slots = sum(int(w.get("resources", {}).get("GPU", 0)) for w in workers)
        if device == "cuda" and not gpu_slots:
            self.close()  # a job asking for a GPU would wait for one forever
            raise ValueError(f"--device cuda was asked for, but no worker of the Dask cluster at {address} "
                             "declares a GPU (start GPU workers with: dask worker ... --resources GPU=1)")
        self.gpus = device != "cpu" and gpu_slots > 0
        slots = {address: int(w.get("resources", {}).get("GPU", 0)) if self.gpus else w.get("nthreads", 1)
                 for address, w in info["workers"].items()}
        self.capacity = max(1, sum(slots.values()))
        self.threads = self._threads_per_job(info["workers"], slots)

    def _threads_per_job(self, workers: dict[str, dict], slots: dict[str, int]) -> int:
        """The cores of each worker's machine shared among the jobs all its workers run at
        once; the smallest share, since any job may land anywhere."""
        from dask.system import cpu_count  # cores this process may use: affinity and cgroup limits count

        try:
            cores = self.client.run(cpu_count)  # {worker address: cores of its machine}
        except Exception as exc:  # noqa: BLE001 (a worker gone since the listing): one thread never oversubscribes
            print(f"warning: the Dask workers could not be asked for their cores ({type(exc).__name__}: {exc}); "
                  "each notebook gets 1 thread", file=sys.stderr, flush=True)
            return 1
        hosts = {address: workers[address].get("host", address) for address in slots}
        per_host: dict[str, int] = {}
        for address, count in slots.items():
            per_host[hosts[address]] = per_host.get(hosts[address], 0) + count
        return min((max(1, (cores.get(address) or 1) // per_host[hosts[address]])
                    for address, count in slots.items() if count), default=1)

    def submit(self, job: ExecutionJob) -> Future:
        job.gpu = 0 if self.gpus else None  # each GPU worker sees its own GPU as device 0
        resources = {"GPU": 1} if self.gpus else None
        return self.client.submit(execute, job, resources=resources, pure=False, retries=0)

    def release(self, future: Future) -> None:
        pass

    def wait(self, futures: list) -> set:
        from distributed import wait as dask_wait

        return set(dask_wait(futures, return_when="FIRST_COMPLETED").done)

    def close(self) -> None:
        if self.owned:
            self.client.close()


def _reference_runner(cluster: DaskWorkers | None, gpus: int) -> Callable[[ExecutionJob], ExecutionOutcome]:
    """The solution runs where the submissions run: on a GPU (or the cluster) when they do."""

    def run(job: ExecutionJob) -> ExecutionOutcome:
        workers = cluster or LocalWorkers(1, gpus)
        try:
            return workers.submit(job).result()
        except KeyboardInterrupt:
            stop_running_jobs()
            raise
        finally:
            if workers is not cluster:  # the cluster's client stays open for the submissions
                workers.close()

    return run


def _submitted_at(course: Course, student: str, assignment: str) -> str:
    """When the submission was made (collect's ``timestamp.txt``), ISO and UTC; "" if unknown."""
    submitted = submission_time(course.submitted / student / assignment)
    return "" if submitted is None else submitted.isoformat()


def _prepare(assignment: Assignment, student: str, path: Path | None, course: Course) -> tuple[SubmissionResult, str | None]:
    """Steps 1-2: the result so far and the notebook to execute (None when there is nothing to run)."""
    result = SubmissionResult(student, assignment.name, "graded", submitted_at=_submitted_at(course, student, assignment.name))
    if path is None:
        result.status = "failed"
        result.problems.append("no notebook found: expected submitted/<student>/<assignment>/<assignment>.ipynb")
        return result, None
    result.submission_sha256 = _sha256(path)
    try:
        submission, notes = read_submission(path, course.limits)
        runnable, more_notes = assemble(assignment, submission)
    except (SubmissionError, WrongAssignmentError) as exc:
        result.status = "failed"
        result.problems.append(str(exc))
        return result, None
    result.notes += notes + more_notes
    if any(missing_answer_note(gid) in more_notes for gid in assignment.answer_ids):
        result.status = "problem"
        result.problems.append("answer cells are missing from the submission")
    if findings := scan(runnable):
        result.status = "problem"
        result.problems.append(review_problem(findings))
    return result, nbformat.writes(runnable)


def _finish(assignment: Assignment, reference, result: SubmissionResult, outcome: ExecutionOutcome | None) -> None:
    """Step 4 on a prepared result."""
    try:
        executed = read_executed(outcome.notebook) if outcome is not None and outcome.notebook is not None else None
    except Exception:  # noqa: BLE001 - a run cut short while writing its notebook
        executed = None
        result.problems.append("the executed notebook could not be read back (the run was cut short while "
                               "writing it): no test result could be placed")
        result.status = "problem"
    result.cells = score_cells(assignment, reference, outcome, executed)
    result.reference = reference.key
    if outcome is None:
        return
    result.seconds, result.host = outcome.seconds, outcome.host
    result.notes += answer_errors(executed)
    if stopped := timed_out_cells(executed):  # the run goes on, but the instructor should know
        result.problems.append(f"stopped at the time limit per cell: {', '.join(stopped)}")
    if outcome.status != "ok":
        # Tampering is flagged, but the answers still earn what their records show.
        result.status = "problem" if outcome.notebook or outcome.status == "tampered" else "failed"
        result.problems.append(outcome.message)


def grade(
    course: Course,
    name: str,
    options: GradeOptions,
    on_result: Callable[[SubmissionResult], None] | None = None,
) -> GradeReport:
    """Grade the submissions of assignment ``name``; see the module docstring."""
    assignment = load_assignment(course, name)
    submissions = find_submissions(course, name, options.students)
    cluster = DaskWorkers(options.scheduler, options.device) if options.scheduler else None
    gpus = 0 if cluster else gpu_count(options.device)
    use_cuda = cluster.gpus if cluster else gpus > 0  # a cluster: what its workers declare
    parameters = {"device": "cuda" if use_cuda else "cpu", "seed": options.seed,
                  "data_source": options.data_source, "quick": options.quick}
    report = GradeReport(name)
    with contextlib.closing(cluster) if cluster else contextlib.nullcontext(), GradebookWriter(course) as gradebook:
        if not gradebook.has_assignment(assignment):
            release(course, name)  # registers the assignment's cells in the gradebook
        announce = (lambda: print(f"running the solution of {name!r} once, for reference (kept for later runs)",
                                  file=sys.stderr, flush=True)) if options.progress else None
        reference = reference_for(course, assignment, parameters, run=_reference_runner(cluster, gpus),
                                  on_run=announce)
        pending: list[tuple[SubmissionResult, str]] = []
        for student, path in submissions.items():
            out_dir = course.autograded / student / name
            if not options.force and path is not None and (out_dir / "result.json").is_file():
                previous = SubmissionResult.load(out_dir / "result.json")
                if previous.submission_sha256 == _sha256(path) and previous.reference == reference.key:
                    submitted_at = _submitted_at(course, student, name)  # the same notebook, collected again
                    if not gradebook.has_submission(name, student) or previous.submitted_at != submitted_at:
                        previous.submitted_at = submitted_at
                        previous.save(out_dir / "result.json")
                        gradebook.record(assignment, previous)  # a new gradebook (--db) is filled, a time updated
                    report.unchanged.append(previous)
                    continue
            result, notebook = _prepare(assignment, student, path, course)
            if notebook is None:
                _finish(assignment, reference, result, None)
                _record(course, gradebook, assignment, result, None, report, on_result)
            else:
                pending.append((result, notebook))
        if cluster:
            workers: LocalWorkers | DaskWorkers = cluster
        else:
            count = options.workers or (gpus if gpus else (os.cpu_count() or 1))
            workers = LocalWorkers(max(1, min(count, len(pending) or 1)), gpus)
        threads = workers.threads
        bar = tqdm(total=len(pending), desc=f"grading {name}", unit="nb", disable=not options.progress)
        try:
            for result, outcome in _run(pending, parameters, course, workers, threads):
                _finish(assignment, reference, result, outcome)
                _record(course, gradebook, assignment, result, outcome, report, on_result)
                bar.set_postfix_str(f"last: {result.student}", refresh=False)
                bar.update(1)
        except KeyboardInterrupt:
            stop_running_jobs()  # else closing the workers waits for every running notebook
            raise
        finally:
            bar.close()
            if workers is not cluster:  # the cluster's client closes with the block
                workers.close()
        for result in report.results + report.unchanged:
            report.standings[result.student] = gradebook.standing(name, result.student)
    return report


def _run(pending, parameters, course, workers, threads) -> Iterator[tuple[SubmissionResult, ExecutionOutcome]]:
    """Keep every worker busy; retry submissions whose runner was killed."""
    queue = list(pending)
    attempts: dict[str, int] = {}
    running: dict[Future, tuple[SubmissionResult, str]] = {}

    def start(result: SubmissionResult, notebook: str) -> None:
        attempts[result.student] = attempts.get(result.student, 0) + 1
        job = ExecutionJob(notebook, dict(parameters), course.limits, label=result.student, threads=threads)
        running[workers.submit(job)] = (result, notebook)

    while queue or running:
        while queue and len(running) < workers.capacity:
            start(*queue.pop(0))
        for future in workers.wait(list(running)):
            result, notebook = running.pop(future)
            workers.release(future)
            try:
                outcome = future.result()
            except Exception as exc:  # a Dask worker died (KilledWorker) or the task failed
                outcome = ExecutionOutcome("killed", f"the worker running it died: {type(exc).__name__}: {exc}", None, [], 0.0)
            if outcome.status == "killed" and attempts[result.student] < MAX_ATTEMPTS:
                queue.append((result, notebook))
                continue
            if outcome.status == "killed":
                outcome.message = f"{outcome.message} (killed its worker {attempts[result.student]} times; gave up)"
            yield result, outcome


def _record(course, gradebook, assignment, result, outcome, report, on_result) -> None:
    """Step 5: the gradebook, then the files, as soon as one result is known."""
    out_dir = course.autograded / result.student / assignment.name
    out_dir.mkdir(parents=True, exist_ok=True)
    if outcome is not None and outcome.notebook is not None:
        (out_dir / f"{assignment.name}.ipynb").write_text(outcome.notebook, encoding="utf-8")
    gradebook.record(assignment, result)
    result.save(out_dir / "result.json")
    report.results.append(result)
    if on_result:
        on_result(result)
