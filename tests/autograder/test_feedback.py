"""The feedback page a student reads: questions by their part, one line per cause."""

from pathlib import Path

import pytest

from autograder.config import Course
from autograder.feedback import feedback
from autograder.gradebook import GradebookWriter
from autograder.records import CheckResult
from autograder.release import release
from autograder.results import CellScore, SubmissionResult
from autograder.source import load_assignment

ROOT = Path(__file__).resolve().parents[2]
NOT_RECORDED = "not recorded: the test stopped before this check (see the error above)"


def test_graded_cells_know_their_part_of_the_assignment():
    sections = {c.grade_id: c.section for c in load_assignment(Course(ROOT), "softmax").graded_cells}
    assert sections["test_softmax"] == "Part 1: the softmax (3 points)"
    assert sections["q_large_vocab"] == "Part 7: written answers (2 + 2 points, graded by hand)"


def test_a_test_stopped_by_an_error_is_one_line_not_one_per_check(course):
    checks = [CheckResult(f"mean/{i}", False, NOT_RECORDED) for i in range(3)]
    result = SubmissionResult("dan", "tiny", "graded", cells=[
        CellScore("test_double", "auto", 2.0, 2.0, [CheckResult("double/3", True)]),
        CellScore("test_mean", "auto", 3.0, 0.0, checks, "NameError: name 'mean' is not defined"),
        CellScore("test_other", "auto", 1.0, 0.0, [CheckResult("x", False, NOT_RECORDED)], "ValueError: no"),
    ], notes=["answer cell 'mean' raised RuntimeError: I was debugging here"])
    result.save(course.autograded / "dan" / "tiny" / "result.json")
    release(course, "tiny")
    with GradebookWriter(course) as gb:  # test_other is not a cell of tiny: the page falls back to the result
        known = [c for c in result.cells if c.grade_id != "test_other"]
        gb.record(load_assignment(course, "tiny"), SubmissionResult("dan", "tiny", "graded", cells=known))
    [page] = feedback(course, "tiny")
    text = page.read_text()
    assert "none of its 3 checks was reached" in text and text.count(NOT_RECORDED) == 1  # test_other's own line
    assert "NameError: name &#x27;mean&#x27; is not defined" in text
    assert "answer cell &#x27;mean&#x27; raised RuntimeError: I was debugging here" in text
    assert "<td>test_mean</td>" in text  # the tiny source has no parts: the cell's id labels the row


def test_another_gradebook_is_an_error_not_pages_without_manual_grades(course):
    SubmissionResult("dan", "tiny", "graded", cells=[
        CellScore("test_double", "auto", 2.0, 2.0, [CheckResult("double/3", True)])]).save(
        course.autograded / "dan" / "tiny" / "result.json")
    with pytest.raises(ValueError, match="holds no grades of 'tiny'"):
        feedback(course, "tiny")
