"""Attack notebooks (issue 7): each a realistic cheating or crashing attempt, graded end to
end with an exact expected outcome, every other submission still graded, and the
grader's machine unharmed. Needs the sandbox (root + namespaces); skipped otherwise."""

import http.server
import os
import shutil
import threading
from pathlib import Path

import psutil
import pytest

from autograder.config import Course, Limits
from autograder.execute import isolated
from autograder.grade import GradeOptions, grade
from autograder.gradebook import GradebookWriter
from autograder.results import SubmissionResult
from autograder.sandbox import UID_BASE, UID_COUNT
from tests.autograder.conftest import make_course, submit

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not isolated(), reason="the sandbox needs root and Linux namespaces"),
]

# attack -> (auto score out of 5, status, words the recorded reason must contain)
EXPECTED = {
    "fork_bomb": (5.0, "graded", ""),  # forks stop at the process limit; all killed afterwards
    "memory_hog": (0.0, "problem", "memory limit"),  # killed at the memory limit, reason recorded
    "delete_files": (5.0, "graded", ""),  # nothing of the course is visible or writable
    "read_environ": (3.0, "problem", "for review"),  # the grader's environment is not readable
    "network": (3.0, "graded", ""),  # no route anywhere, not even to the host's loopback
    "fill_disk": (5.0, "graded", ""),  # writes fill a private, size-limited /tmp
    "print_gigabytes": (5.0, "graded", ""),  # 200 MB printed: output beyond the budget is dropped
    "disable_checks": (0.0, "problem", "for review"),  # a disabled recorder records nothing: nothing earned
    "forge_records": (3.0, "problem", "for review"),  # a forged record written from an answer cell is ignored
    "forge_duplicates": (3.0, "problem", "for review"),  # a forged record next to the real one fails both
    "patch_builtins": (0.0, "problem", "longer than its limit"),  # the kernel hangs on its own sabotage
    "patch_testing": (3.0, "problem", "for review"),  # patched comparison helpers are never used to judge
    "swallow_errors": (3.0, "problem", "for review"),
    "steal_solutions": (3.0, "graded", ""),  # not this course's, nor a copy elsewhere (/srv)
    "raise_others": (5.0, "graded", ""),  # and every other student's grade is untouched
    "ignore_interrupt": (2.0, "problem", "longer than its limit"),
    "kill_everything": (2.0, "graded", ""),  # kill(-1) reaches no grader process; mean never defined
    # Records are collected as each cell ends: deleting them changes nothing collected, and a
    # records file begun again (or swapped for a copy) is tampering, its content then not collected.
    "delete_records": (2.0, "problem", "was replaced or truncated"),
    "relabel_cells": (3.0, "problem", "missing"),
    # The runner reports through descriptors the grader opened: files of those names in the
    # job's directory are never read, whatever they are.
    "symlink_status": (5.0, "problem", "for review"),
    "fifo_status": (5.0, "problem", "for review"),
    "symlink_output": (5.0, "problem", "for review"),
    "symlink_records": (0.0, "problem", "checks.jsonl is a symbolic link"),  # the runner never reads /dev/zero
    "rewrite_records": (4.0, "problem", "was replaced or truncated"),  # the record keeps its first value; flagged
    "carriage_returns": (3.5, "problem", "for review"),  # a "\r" moves no record into the next test cell
    "empty_arrays": (1.0, "problem", "for review"),  # unreadable arrays fail their checks; the grader goes on
    # a record nested 200,000 deep is skipped and flagged, not a crash to retry
    "deep_json": (5.0, "problem", "not a record check() could write (malformed, nested too deep"),
    "runner_descriptors": (3.0, "problem", "for review"),  # neither the runner's descriptors nor its memory can be reached
    "interrupt_runner": (5.0, "graded", ""),  # SIGINT to the runner (PID 1) stops nothing
    "leak_hidden": (3.25, "graded", ""),  # double raises, mean returns a leaking type; see the feedback test
    "sysv_memory": (5.0, "problem", "for review"),  # its segment is the job's own (see the host test below)
    "os_exit": (2.0, "problem", "kernel died"),
    "rigged_dunder": (3.0, "graded", ""),  # a float subclass rigged to equal anything is still 0.0
    "detached_daemon": (5.0, "graded", ""),  # a setsid daemon dies with the job's PID namespace
    # no setuid, chroot, or user namespace that unmounts the jail; running unshare is flagged
    "regain_root": (3.0, "problem", "imports subprocess"),
    "inherited_fds": (3.0, "problem", "for review"),  # no descriptor of the grader's files is inherited
    "rebind_check": (2.75, "problem", "line 2: binds check"),  # gains mean/unchanged (known in advance); flagged
    "big_files": (5.0, "graded", ""),  # the job's directory is a capped tmpfs, not the grader's disk
}
HONEST = {"honest-a": ("correct", 5.0), "honest-b": ("partly_wrong", 3.5)}


def sandbox_processes() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["uids"]):
        uids = proc.info["uids"]
        if uids and UID_BASE <= uids.real < UID_BASE + UID_COUNT:
            found.append(proc)
    return found


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("attacks") / "course")
    course = Course(course.root, limits=Limits(cell_timeout=20, notebook_timeout=60, memory_bytes=3 * 2**30,
                                               scratch_bytes=512 * 2**20, max_processes=64))
    for attack in EXPECTED:
        submit(course, attack.replace("_", "-"), f"attack_{attack}")
    for student, (fixture, _) in HONEST.items():
        submit(course, student, fixture)
    # A copy of the solutions outside the course, as on a machine with several checkouts:
    # steal_solutions must not find it either.
    decoy = Path("/srv") / f"autograder-decoy-{os.getpid()}"
    shutil.copytree(course.solutions, decoy / "solutions")
    server = http.server.HTTPServer(("127.0.0.1", 18765), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["GRADER_SECRET"] = "do-not-leak"
    lib_files = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "lib").iterdir())
    before = leftovers()
    try:
        report = grade(course, "tiny", GradeOptions(workers=2, progress=False, device="cpu"))
    finally:
        server.shutdown()
        del os.environ["GRADER_SECRET"]
        shutil.rmtree(decoy)
    return course, report, lib_files, before


def leftovers() -> set:
    """What a run could leave on the host: sandbox processes, working dirs, filler files."""
    return (
        {("process", p.pid) for p in sandbox_processes()}
        | {("dir", str(p)) for p in Path("/tmp").glob("autograder-*") if p.is_dir()}
        | {("file", str(p)) for p in Path("/tmp").glob("fill*")}
    )


def test_each_attack_gets_exactly_what_its_answers_earn(attacked):
    course, report, _, _ = attacked
    got = {r.student: (r.score, r.status) for r in report.results}
    expected = {a.replace("_", "-"): (score, status) for a, (score, status, _) in EXPECTED.items()}
    expected.update({s: (score, "graded") for s, (_, score) in HONEST.items()})
    assert got == expected


def test_reasons_are_recorded(attacked):
    course, report, _, _ = attacked
    results = {r.student: r for r in report.results}
    for attack, (_, _, words) in EXPECTED.items():
        if words:
            assert any(words in p for p in results[attack.replace("_", "-")].problems), (attack, results[attack.replace("_", "-")].problems)


def test_other_students_are_unharmed(attacked):
    course, _, _, _ = attacked
    with GradebookWriter(course) as gb:
        scores = gb.scores("tiny")
    assert scores["honest-a"] == 5.0 and scores["honest-b"] == 3.5
    assert (course.solutions / "tiny" / "tiny.ipynb").is_file()
    assert (course.submitted / "honest-a" / "tiny" / "tiny.ipynb").is_file()
    assert SubmissionResult.load(course.autograded / "honest-a" / "tiny" / "result.json").score == 5.0


def test_the_grading_machine_is_unharmed(attacked):
    course, _, lib_files, before = attacked
    assert sorted(p.name for p in (Path(__file__).resolve().parents[2] / "lib").iterdir()) == lib_files
    # Nothing new outlives grading: no sandbox process, working directory or filler file.
    assert not leftovers() - before
    executed = course.autograded / "print-gigabytes" / "tiny" / "tiny.ipynb"
    assert executed.stat().st_size < 20 * 2**20, "outputs were not capped"


def test_nothing_behind_a_link_reaches_the_graded_files(attacked):
    """symlink_output linked the solution where the runner used to write the executed
    notebook: what is kept must be the run of the submission itself."""
    import nbformat

    course, _, _, _ = attacked
    kept = nbformat.read(course.autograded / "symlink-output" / "tiny" / "tiny.ipynb", as_version=4)
    double = next(c for c in kept.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "double")
    assert "os.symlink(" in double.source and double.execution_count is not None


def test_system_v_memory_dies_with_the_job(attacked):
    """sysv_memory left a 16 MiB segment under key 0x5EED: in the job's own IPC namespace,
    so nothing of it is on the host (it would hold host memory until reboot, and the next
    job of the same sandbox uid could read it)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.shmget(0x5EED, 0, 0) == -1 and ctypes.get_errno() == 2  # ENOENT: no such segment


def test_hidden_tests_copied_into_error_messages_are_not_shown(attacked):
    """leak_hidden put the kernel's history (hidden tests included) and the hidden input into
    error messages, the name of an exception class and the name of a returned object's type:
    the result and the feedback page say what went wrong without repeating any of them."""
    from autograder.feedback import feedback

    course, _, _, _ = attacked
    result = SubmissionResult.load(course.autograded / "leak-hidden" / "tiny" / "result.json")
    shown = [cell.error for cell in result.cells] + result.notes + result.problems
    page = next(p for p in feedback(course, "tiny") if "leak-hidden" in p.parts).read_text()
    for text in [*shown, page]:
        assert "LEAK" not in text and "manual_seed" not in text and "randn" not in text
    assert any(error.startswith("an exception of a class defined in the notebook (its message is not shown")
               for error in shown)
    checks = [k.message for cell in result.cells for k in cell.checks]
    assert "expected a tensor, got an object of a class defined in the notebook that cannot be checked" in checks
    assert any("answer cell 'mean' raised RuntimeError (its message is not shown" in note for note in result.notes)
