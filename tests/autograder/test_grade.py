"""End to end: every fixture submission graded in one run, with exact expected scores."""

import csv
import json
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest

from autograder import cli
from autograder import grade as grade_module
from autograder.config import Course, Limits
from autograder.execute import ExecutionJob
from autograder.grade import DaskWorkers, GradeOptions, grade
from autograder.gradebook import GradebookWriter
from tests.autograder.conftest import SUBMISSIONS, make_course, submit

pytestmark = pytest.mark.slow

# fixture -> (auto score out of 5, status). The written answer (1 point) awaits a human.
EXPECTED = {
    "correct": (5.0, "graded"),
    "partly_wrong": (3.5, "graded"),  # mean sums: test_mean keeps only its unchanged-input checks
    "raising": (3.0, "graded"),
    "looping": (3.0, "graded"),  # test_double interrupted by the cell timeout, later cells run
    "tampered": (3.0, "graded"),  # edited tests are replaced by the source's
    "deleted_tests": (5.0, "graded"),  # deleted tests come back from the source
    "stripped_tests": (5.0, "graded"),  # tests without metadata: the source's still run
    "missing_answer": (2.0, "problem"),
    "kills_kernel": (2.0, "problem"),  # os._exit in the mean answer: what ran before counts
    "sys_exit": (2.0, "graded"),  # SystemExit stops that cell; mean is never defined
    "rigged": (3.0, "problem"),  # __eq__ always True and a patched torch.allclose gain nothing; flagged
    "fake_output": (3.0, "graded"),  # forged outputs and points in the metadata are ignored
    "extra_helper": (5.0, "graded"),  # a helper cell the student added is kept
    "old_nbformat": (5.0, "graded"),
    "corrupted": (0.0, "failed"),
    "empty": (0.0, "failed"),
    "not_a_notebook": (0.0, "failed"),
    "other_assignment": (0.0, "failed"),
}


# Seconds per cell: room for the setup cell's torch import on a busy machine (8 s was not);
# the looping submission waits it out.
CELL_TIMEOUT = 20


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("e2e") / "course", cell_timeout=CELL_TIMEOUT)
    for name in EXPECTED:
        submit(course, name.replace("_", "-"), name)
    (course.submitted / "correct" / "tiny" / "timestamp.txt").write_text("2026-12-01 22:59:10.000000 UTC")  # as collect writes it
    status = cli.main(["--course", str(course.root), "grade", "tiny", "--workers", "2", "--timeout", str(CELL_TIMEOUT)])
    return course, status


def test_every_submission_gets_its_exact_score(graded):
    course, _ = graded
    with GradebookWriter(course) as gb:
        scores = gb.scores("tiny")
    assert scores == {name.replace("_", "-"): score for name, (score, _) in EXPECTED.items()}


def test_status_and_reasons_are_recorded(graded):
    from autograder.results import SubmissionResult

    course, status = graded
    results = {p.parent.parent.name: SubmissionResult.load(p) for p in course.autograded.glob("*/tiny/result.json")}
    assert {s: r.status for s, r in results.items()} == {n.replace("_", "-"): st for n, (_, st) in EXPECTED.items()}
    assert status == 1  # some submissions have problems (2 is kept for usage and configuration errors)
    assert "not valid JSON" in results["corrupted"].problems[0]
    assert "empty" in results["empty"].problems[0]
    assert "not a Jupyter notebook" in results["not-a-notebook"].problems[0]
    assert "none of the answer cells" in results["other-assignment"].problems[0]
    assert "kernel died" in results["kills-kernel"].problems[0]
    assert "missing" in results["missing-answer"].problems[0]
    assert any("nbformat 3" in n for n in results["old-nbformat"].notes)
    assert "answer cell 'mean' raised SystemExit: bye" in results["sys-exit"].notes  # not only the tests' NameError
    assert results["rigged"].problems == [
        "for review: the notebook's own code reaches into the grading or the interpreter, which an honest answer "
        "has no need to do (it could have recorded checks it did not earn): answer cell 'double', line 6: assigns "
        "to torch.allclose"]
    looping = {c.grade_id: c for c in results["looping"].cells}
    assert looping["test_double"].error.startswith("KeyboardInterrupt (the cell ran longer than the time limit")
    assert results["looping"].problems == ["stopped at the time limit per cell: test_double"]
    assert all(c.score is None for c in results["correct"].cells if c.kind == "manual")
    # executed notebooks are kept for audit, once (papermill would nest the input notebook in their metadata)
    kept = json.loads((course.autograded / "correct" / "tiny" / "tiny.ipynb").read_text())
    assert isinstance(kept["metadata"]["papermill"]["input_path"], str)


def test_submission_times_reach_the_gradebook_and_the_feedback(graded):
    """nbgrader's formgrader and its own export read the submission's time from the gradebook."""
    from nbgrader.api import Gradebook

    course, _ = graded
    with Gradebook(course.db_url, "dl-course") as gb:
        assert gb.find_submission("tiny", "correct").timestamp == datetime(2026, 12, 1, 22, 59, 10)  # naive UTC
        assert gb.find_submission("tiny", "partly-wrong").timestamp is None  # no timestamp.txt: not invented
    cli.main(["--course", str(course.root), "feedback", "tiny"])
    assert "Student <b>correct</b>, submitted 2026-12-01 22:59:10 UTC." in (
        course.feedback / "correct" / "tiny" / "feedback.html").read_text()


def test_export_and_feedback(graded):
    course, _ = graded
    assert cli.main(["--course", str(course.root), "export", "tiny"]) == 0
    rows = list(csv.DictReader(open(course.exports / "tiny.csv")))
    by_student = {r["student"]: r for r in rows}
    assert by_student["partly-wrong"]["test_mean"] == "1.5" and by_student["partly-wrong"]["total"] == "3.5"
    assert by_student["correct"]["q_mean"] == "" and by_student["correct"]["needs_manual_grading"] == "True"
    assert by_student["correct"]["pending_points"] == "1" and by_student["correct"]["max_score"] == "6"
    report = (course.exports / "tiny-report.html").read_text()
    assert report.count("data:image/png;base64,") == 2
    assert cli.main(["--course", str(course.root), "feedback", "tiny"]) == 0
    page = (course.feedback / "partly-wrong" / "tiny" / "feedback.html").read_text()
    assert "3.5 / 6" in page and "values differ" in page
    line = {name: page.split(f"<li>{name}: ")[1].split("</li>")[0] for name in ("mean/small", "mean/float64")}
    # a visible check shows the expected value; what was recorded only if the cell ran before
    # any hidden test (test_mean runs after test_double's hidden part, so not here)
    assert line["mean/small"].endswith("; expected [2., 3.]")
    assert "; expected" not in line["mean/float64"] and "[" not in line["mean/float64"]  # a hidden one never
    hidden = open(course.solutions / "tiny" / "tiny.ipynb").read()
    assert "torch.randn(7, 4" in hidden and "torch.randn(7, 4" not in page  # hidden test code never shown


def test_a_rerun_still_reports_earlier_problems_and_shows_manual_grades(graded, capsys):
    from nbgrader.api import Gradebook

    course, status = graded
    with Gradebook(course.db_url, "dl-course") as gb:  # an instructor grades one written answer
        grade = gb.find_grade("q_mean", "tiny", "tiny", "partly-wrong")
        grade.manual_score, grade.needs_manual_grade = 0.5, False  # as nbgrader's formgrader saves a grade
        gb.db.commit()
    capsys.readouterr()
    again = cli.main(["--course", str(course.root), "grade", "tiny", "--workers", "2", "--timeout", str(CELL_TIMEOUT)])
    out = capsys.readouterr().out
    assert again == status  # a second run does not turn a failed run green
    problems = sum(st != "graded" for _, st in EXPECTED.values())
    assert f"0 graded now, {len(EXPECTED)} unchanged, {problems} with problems" in out
    assert "failed*" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert rows["partly-wrong"].split()[1:3] == ["4/6", "graded*"]  # 3.5 + the manual 0.5, nothing pending
    assert rows["correct"].split()[1:4] == ["5/6", "+", "graded*"]  # its written answer still waits


def test_resume_after_interruption(tmp_path):
    course = make_course(tmp_path / "course")
    for student, fixture in [("a", "correct"), ("b", "partly_wrong"), ("c", "raising")]:
        submit(course, student, fixture)
    seen = []

    def crash_after_first(result):
        seen.append(result.student)
        raise KeyboardInterrupt  # the instructor's laptop goes to sleep

    with pytest.raises(KeyboardInterrupt):
        grade(course, "tiny", GradeOptions(workers=1, progress=False), on_result=crash_after_first)
    report = grade(course, "tiny", GradeOptions(workers=1, progress=False))
    assert seen[0] in report.skipped and len(report.results) == 2
    with GradebookWriter(course) as gb:
        assert gb.scores("tiny") == {"a": 5.0, "b": 3.5, "c": 3.0}
    again = grade(course, "tiny", GradeOptions(workers=1, progress=False))
    assert sorted(again.skipped) == ["a", "b", "c"] and not again.results
    forced = grade(course, "tiny", GradeOptions(workers=2, progress=False, force=True))
    assert sorted(r.student for r in forced.results) == ["a", "b", "c"]
    # A new gradebook (another --db, or gradebook.db deleted): unchanged results fill it.
    fresh = Course(course.root, db_url=f"sqlite:///{tmp_path / 'fresh.db'}", limits=course.limits)
    refilled = grade(fresh, "tiny", GradeOptions(workers=1, progress=False))
    assert not refilled.results and sorted(refilled.skipped) == ["a", "b", "c"]
    with GradebookWriter(fresh) as gb:
        assert gb.scores("tiny") == {"a": 5.0, "b": 3.5, "c": 3.0}


def test_validate_names_broken_answers_and_deleted_tests(course, tmp_path):
    import nbformat

    from autograder.release import release
    from autograder.validate import format_report, validate

    released = nbformat.read(release(course, "tiny"), as_version=4)
    assert released.metadata["autograder"] == {"assignment": "tiny", "tests": ["test_double", "test_mean"],
                                               "answers": ["double", "mean", "q_mean"]}
    answers = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source
               for c in nbformat.read(SUBMISSIONS / "correct.ipynb", as_version=4).cells}
    for cell in released.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and gid in answers:
            cell.source = answers[gid]
        if gid == "mean":
            cell.source = "raise RuntimeError('I was debugging here')\n" + cell.source
    released.cells = [c for c in released.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_mean"]
    released.cells.append(nbformat.v4.new_code_cell("import ctypes\nlibc = ctypes.CDLL(None)"))  # the student's own
    path = tmp_path / "tiny.ipynb"
    nbformat.write(released, path)
    report = validate(path)
    assert report.for_review == ["a cell the student added, line 1: imports ctypes"]  # told before submitting
    assert "NOTE  the grader will flag this for your instructor's review: a cell the student added, line 1: " \
           "imports ctypes" in format_report(report)
    assert report.passed == [("test_double", 2.0)] and report.failed == []
    assert report.answer_errors == [("mean", "RuntimeError: I was debugging here")]
    assert report.missing_tests == ["test_mean"] and not report.ok
    assert report.unanswered == []


def test_validate_finds_unwritten_stubs_and_cells_the_grader_would_not_find(course, tmp_path):
    import nbformat

    from autograder.release import release
    from autograder.validate import format_report, validate

    released = nbformat.read(release(course, "tiny"), as_version=4)
    path = tmp_path / "tiny.ipynb"
    nbformat.write(released, path)
    untouched = validate(path)  # the stubs sit inside functions: running them raises nothing
    assert untouched.unanswered == ["double", "mean", "q_mean"] and not untouched.ok

    # 'double' written in a cell of the student's own below the stub: the test runs it, and so would the grader
    own = nbformat.v4.new_code_cell("def double(x):\n    return 2 * x")
    below = released.copy()
    below.cells = [*released.cells[:4], own, *released.cells[4:]]
    nbformat.write(below, path)
    redefined = validate(path)
    assert redefined.redefined == [("double", ["double"])] and redefined.unanswered == ["mean", "q_mean"]
    assert ("test_double", 2.0) in redefined.passed
    assert "a cell of yours further down defines double again" in format_report(redefined)
    below.cells = [*released.cells[:5], own, *released.cells[5:]]  # after the test: the test ran the stub
    nbformat.write(below, path)
    too_late = validate(path)
    assert too_late.redefined == [] and too_late.unanswered == ["double", "mean", "q_mean"]
    assert [gid for gid, _, _ in too_late.failed] == ["test_double", "test_mean"]

    for cell in released.cells:  # the student retypes the 'mean' answer in a new cell
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "mean":
            cell.metadata = {}
    nbformat.write(released, path)
    assert validate(path).missing_answers == ["mean"]

    for cell in released.cells:  # every cell pasted into a new notebook
        cell.metadata = {}
    released.metadata = {}
    nbformat.write(released, path)
    stripped = validate(path)
    text = format_report(stripped)
    assert not stripped.ok and "no cell of this notebook carries the assignment's grade ids" in text
    assert "(no visible test ran)" in text and "all visible tests pass" not in text


def test_a_second_checkout_grades_with_its_own_code(tmp_path):
    """The environment's install of the course points at this checkout; a grader started
    from another copy must run that copy's autograder and lib (the sandbox hides this one)."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    checkout = tmp_path / "checkout"
    for package in ("autograder", "lib"):
        shutil.copytree(root / package, checkout / package, ignore=shutil.ignore_patterns("__pycache__"))
    course = make_course(tmp_path / "course")
    submit(course, "a", "correct")
    done = subprocess.run([sys.executable, "-m", "autograder", "--course", str(course.root), "grade", "tiny",
                           "--workers", "1"], cwd=checkout, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "running the solution of 'tiny' once, for reference" in done.stderr  # the wait is explained
    with GradebookWriter(course) as gb:
        assert gb.scores("tiny") == {"a": 5.0}


def scratch_mounts() -> set[str]:
    """The grader's tmpfs mounts for job directories (made when it runs as root)."""
    return {line.split()[1] for line in open("/proc/mounts") if "/autograder-" in line.split()[1]}


@pytest.mark.parametrize("stop, status, said", [(signal.SIGINT, 130, "interrupted"),
                                                (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_or_kill_stops_running_notebooks_at_once(tmp_path, stop, status, said):
    """SIGTERM (kill, a cancelled CI run) used to end the grader at once, leaving the running
    job's tmpfs mounted and its files in memory; now it stops as Ctrl-C does."""
    import psutil

    mounts = scratch_mounts()
    course = make_course(tmp_path / "course", cell_timeout=120)
    submit(course, "a", "looping")  # would hold its worker for the 120 s cell timeout
    grader = subprocess.Popen([sys.executable, "-m", "autograder", "--course", str(course.root), "grade", "tiny",
                               "--workers", "1", "--timeout", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True,
                              # as from a terminal: a suite started in the background (nohup, &) ignores Ctrl-C
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(course.cache.glob("*")) and time.monotonic() < deadline:  # the reference run is done
        time.sleep(0.2)
    time.sleep(3)  # the submission is running now
    jobs = [p for p in psutil.Process(grader.pid).children(recursive=True)]
    assert jobs, "no job was running"
    grader.send_signal(stop)
    start = time.monotonic()
    _, err = grader.communicate(timeout=60)
    assert time.monotonic() - start < 15
    assert grader.returncode == status and f"{said}: results recorded so far are kept" in err
    assert "Traceback" not in err
    assert not [p for p in jobs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert scratch_mounts() <= mounts


def test_dask_cluster_gives_the_same_gradebook_as_serial(tmp_path):
    distributed = pytest.importorskip("distributed")
    fixtures = {"a": "correct", "b": "partly_wrong", "c": "tampered", "d": "rigged"}
    serial, parallel = make_course(tmp_path / "serial"), make_course(tmp_path / "parallel")
    for course in (serial, parallel):
        for student, fixture in fixtures.items():
            submit(course, student, fixture)
    grade(serial, "tiny", GradeOptions(workers=1, progress=False))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            grade(parallel, "tiny", GradeOptions(scheduler=client, progress=False))
    with GradebookWriter(serial) as a, GradebookWriter(parallel) as b:
        assert a.scores("tiny") == b.scores("tiny") == {"a": 5.0, "b": 3.5, "c": 3.0, "d": 3.0}


def test_a_cluster_runs_on_the_gpus_its_workers_declare():
    """``--device auto`` with a scheduler used to mean CPU: GPU workers got notebooks with
    device "cpu" and no GPU visible. Now the workers' declared resources decide."""
    distributed = pytest.importorskip("distributed")
    import dask.system

    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=False, dashboard_address=None,
                                  resources={"GPU": 1}) as gpu_cluster, distributed.Client(gpu_cluster) as client:
        auto, cpu = DaskWorkers(client, "auto"), DaskWorkers(client, "cpu")
        assert (auto.gpus, auto.capacity) == (True, 2)  # one job per declared GPU
        assert (cpu.gpus, cpu.capacity) == (False, 4)  # one per worker thread
        cores = dask.system.cpu_count()  # both workers are on this machine: jobs share its cores
        assert (auto.threads, cpu.threads) == (max(1, cores // 2), max(1, cores // 4))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cpu_cluster, distributed.Client(cpu_cluster) as client:
        assert DaskWorkers(client, "auto").gpus is False
        assert DaskWorkers(client, "auto").threads == cores  # one job at a time: all the cores
        with pytest.raises(ValueError, match="no worker of the Dask cluster .* declares a GPU"):
            DaskWorkers(client, "cuda")  # its jobs would wait for a GPU forever


class FakeCluster:
    """A Dask client's view of a cluster on other machines: workers, their hosts and cores."""

    def __init__(self, workers: dict[str, dict], cores: dict[str, int]) -> None:
        self.workers, self.cores = workers, cores

    def submit(self, *args, **kwargs):
        raise AssertionError("nothing is run here")

    def scheduler_info(self, n_workers: int = 5) -> dict:
        return {"workers": self.workers}

    def run(self, function):
        from dask.system import cpu_count

        assert function is cpu_count  # asked of each worker, on its own machine
        return self.cores


def test_each_job_gets_its_share_of_the_cores_of_the_machine_it_runs_on(capsys):
    """The coordinator's own core count says nothing of the workers' machines."""
    workers = {  # a 32-core GPU box with two GPU workers, a 16-core box with one 4-thread worker
        "tcp://gpu:1": {"host": "gpu", "nthreads": 1, "resources": {"GPU": 1}},
        "tcp://gpu:2": {"host": "gpu", "nthreads": 1, "resources": {"GPU": 1}},
        "tcp://cpu:1": {"host": "cpu", "nthreads": 4},
    }
    cluster = FakeCluster(workers, {"tcp://gpu:1": 32, "tcp://gpu:2": 32, "tcp://cpu:1": 16})
    on_gpus, on_cpus = DaskWorkers(cluster, "auto"), DaskWorkers(cluster, "cpu")
    assert (on_gpus.capacity, on_gpus.threads) == (2, 16)  # two GPU jobs share the GPU box's 32 cores
    assert (on_cpus.capacity, on_cpus.threads) == (6, 4)  # 16 cores / 4 jobs; the GPU box: 32 / 2 = 16
    cluster.run = lambda function: (_ for _ in ()).throw(OSError("worker gone"))
    assert DaskWorkers(cluster, "cpu").threads == 1  # unknown: never oversubscribe
    assert ("warning: the Dask workers could not be asked for their cores (OSError: worker gone); each notebook "
            "gets 1 thread") in capsys.readouterr().err


@pytest.mark.gpu
def test_grading_on_cuda(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    course = make_course(tmp_path / "course")
    submit(course, "a", "correct")
    submit(course, "b", "partly_wrong")
    report = grade(course, "tiny", GradeOptions(device="cuda", progress=False))
    assert {r.student: r.score for r in report.results} == {"a": 5.0, "b": 3.5}


def test_same_scores_twice(tmp_path):
    course = make_course(tmp_path / "course")
    submit(course, "a", "partly_wrong")
    first = grade(course, "tiny", GradeOptions(workers=1, progress=False)).results[0]
    second = grade(course, "tiny", GradeOptions(workers=1, progress=False, force=True)).results[0]
    assert [c.score for c in first.cells] == [c.score for c in second.cells]


def test_the_same_notebook_collected_again_gets_its_new_time_without_a_rerun(tmp_path):
    from nbgrader.api import Gradebook

    course = make_course(tmp_path / "course")
    submit(course, "a", "correct")
    stamp = course.submitted / "a" / "tiny" / "timestamp.txt"
    stamp.write_text("2026-12-01 10:00:00.000000 UTC")
    assert grade(course, "tiny", GradeOptions(workers=1, progress=False)).results[0].submitted_at.startswith(
        "2026-12-01T10:00:00")
    stamp.write_text("2026-12-02 10:00:00.000000 UTC")  # resubmitted unchanged, collected again
    again = grade(course, "tiny", GradeOptions(workers=1, progress=False))
    assert again.results == [] and again.unchanged[0].submitted_at.startswith("2026-12-02T10:00:00")
    with Gradebook(course.db_url, "dl-course") as gb:
        assert gb.find_submission("tiny", "a").timestamp == datetime(2026, 12, 2, 10, 0)


def test_limits_are_typed():
    assert Limits().cell_timeout > 0 and Course(".").db_url.startswith("sqlite:///")
    assert SUBMISSIONS.is_dir()


def test_the_reference_runs_where_the_submissions_run(monkeypatch):
    seen = []
    monkeypatch.setattr(grade_module, "execute", lambda job: seen.append(job.gpu) or "outcome")
    run = grade_module._reference_runner(None, gpus=1)
    assert run(ExecutionJob("{}", {"device": "cuda"})) == "outcome"
    run = grade_module._reference_runner(None, gpus=0)
    assert run(ExecutionJob("{}", {"device": "cpu"})) == "outcome"
    assert seen == [0, None]

    class Cluster:  # the run's Dask client stays open for the submissions that follow
        def submit(self, job):
            return type("Done", (), {"result": lambda self: "on the cluster"})()

        def close(self):
            raise AssertionError("the reference run closed the cluster")

    assert grade_module._reference_runner(Cluster(), gpus=0)(ExecutionJob("{}", {})) == "on the cluster"


def test_validate_without_the_sandbox(tmp_path):
    """A student's laptop (no root): no namespaces, the same runner, the records and the
    executed notebook still pass through the descriptors the grader opened."""
    import os

    import nbformat

    notebook = nbformat.read(SUBMISSIONS / "correct.ipynb", as_version=4)
    next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "double").source = (
        "def double(x):\n    return 0 * x")
    nbformat.write(notebook, tmp_path / "tiny.ipynb")
    done = subprocess.run([sys.executable, "-m", "autograder", "validate", "tiny.ipynb"], cwd=tmp_path,
                          env={**os.environ, "AUTOGRADER_NO_ISOLATION": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "  FAIL  test_double (2 pt): AssertionError: double(3) should be 6" in done.stdout
    assert "  PASS  test_mean (3 pt)" in done.stdout
