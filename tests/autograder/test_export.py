"""The exported CSV: one row per student (graded, in the gradebook, or collected), with the
LMS's id where collect found one; never rows read from the wrong gradebook."""

import csv

import pytest

from autograder.export import export
from autograder.gradebook import GradebookWriter
from autograder.records import CheckResult
from autograder.release import release
from autograder.results import CellScore, SubmissionResult
from autograder.source import load_assignment


def graded(course, student: str, score: float, in_gradebook: bool = True) -> SubmissionResult:
    result = SubmissionResult(student, "tiny", "graded", cells=[
        CellScore("test_double", "auto", 2.0, score, [CheckResult("double/3", score > 0)]),
        CellScore("test_mean", "auto", 3.0, 3.0, [CheckResult("mean", True)]),
        CellScore("q_mean", "manual", 1.0, None),
    ])
    result.save(course.autograded / student / "tiny" / "result.json")
    if in_gradebook:
        release(course, "tiny")
        with GradebookWriter(course) as gb:
            gb.record(load_assignment(course, "tiny"), result)
    return result


def read_rows(csv_path) -> dict[str, dict[str, str]]:
    with open(csv_path, newline="") as f:
        return {r["student"]: r for r in csv.DictReader(f)}


def test_the_csv_carries_the_lms_id_where_collect_found_one(course):
    for student, score in (("doejane", 2.0), ("local", 0.0)):
        graded(course, student, score)
    (course.submitted / "doejane" / "tiny").mkdir(parents=True)
    (course.submitted / "doejane" / "tiny" / "lms_id.txt").write_text("1234\n")
    rows = read_rows(export(course, "tiny")[0])
    assert list(rows["doejane"])[:3] == ["student", "lms_id", "test_double"]
    assert rows["doejane"]["lms_id"] == "1234" and rows["local"]["lms_id"] == ""
    assert rows["doejane"]["total"] == "5" and rows["local"]["total"] == "3"


def test_no_student_is_left_out(course):
    """A student collected but not graded yet, and one whose result file was removed (say by
    make clean) while the gradebook keeps the grades, both get a row that says so."""
    graded(course, "graded", 2.0)
    graded(course, "cleaned", 2.0)
    (course.autograded / "cleaned").rename(course.root / "gone")
    (course.submitted / "late" / "tiny").mkdir(parents=True)
    (course.submitted / "late" / "tiny" / "tiny.ipynb").write_text("{}")
    rows = read_rows(export(course, "tiny")[0])
    assert sorted(rows) == ["cleaned", "graded", "late"]
    assert rows["cleaned"]["total"] == "5" and "scores from the gradebook" in rows["cleaned"]["problems"]
    assert rows["late"]["status"] == "not graded" and rows["late"]["total"] == "0"
    assert rows["late"]["pending_points"] == "6" and "run grade" in rows["late"]["problems"]


def test_another_gradebook_is_an_error_not_a_sheet_of_zeros(course, tmp_path):
    graded(course, "alice", 2.0, in_gradebook=False)  # graded into some other database
    with pytest.raises(ValueError, match="holds no grades of 'tiny'"):
        export(course, "tiny")
    assert not (course.exports / "tiny.csv").exists()
