"""The exported CSV: one row per student, with the LMS's id where collect found one."""

import csv

from autograder.export import export
from autograder.records import CheckResult
from autograder.results import CellScore, SubmissionResult


def test_the_csv_carries_the_lms_id_where_collect_found_one(course):
    for student, score in (("doejane", 2.0), ("local", 0.0)):
        SubmissionResult(student, "tiny", "graded", cells=[
            CellScore("test_double", "auto", 2.0, score, [CheckResult("double/3", score > 0)]),
            CellScore("test_mean", "auto", 3.0, 3.0, [CheckResult("mean", True)]),
            CellScore("q_mean", "manual", 1.0, None),
        ]).save(course.autograded / student / "tiny" / "result.json")
    (course.submitted / "doejane" / "tiny").mkdir(parents=True)
    (course.submitted / "doejane" / "tiny" / "lms_id.txt").write_text("1234\n")
    csv_path, _ = export(course, "tiny")
    rows = {r["student"]: r for r in csv.DictReader(open(csv_path))}
    assert list(rows["doejane"])[:3] == ["student", "lms_id", "test_double"]
    assert rows["doejane"]["lms_id"] == "1234" and rows["local"]["lms_id"] == ""
