"""The feedback page a student reads: questions by their part, one line per cause."""

from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from autograder.assemble import missing_answer_note
from autograder.config import Course
from autograder.feedback import feedback
from autograder.gradebook import GradebookWriter
from autograder.records import CheckResult
from autograder.release import release
from autograder.results import CellScore, SubmissionResult
from autograder.source import load_assignment
from tests.autograder.conftest import grade_written_answer, graded

ROOT = Path(__file__).resolve().parents[2]
NOT_RECORDED = "not recorded: the test stopped before this check (see the error above)"


def graded_page(course: Course, result: SubmissionResult) -> str:
    """The feedback page of ``result``, graded into the gradebook as ``grade`` would."""
    result.save(course.autograded / result.student / result.assignment / "result.json")
    release(course, result.assignment)
    with GradebookWriter(course) as gb:
        gb.record(load_assignment(course, result.assignment), result)
    [page] = feedback(course, result.assignment)
    return page.read_text()


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


def test_the_page_shows_the_gradebooks_scores_and_the_instructors_comment(course):
    """Scores come from the gradebook (a written answer is open until graded by hand, then
    its score and comment show); feedback can be written again after grading."""
    result = graded(course, "amy", 2.0)
    result.submitted_at = "2026-12-01T12:00:05+00:00"
    result.save(course.autograded / "amy" / "tiny" / "result.json")
    [page] = feedback(course, "tiny")
    text = page.read_text()
    assert "<h1>tiny: 5 / 6</h1>" in text and "Student <b>amy</b>, submitted 2026-12-01 12:00:05 UTC." in text
    assert "<td class=pass>2 / 2</td>" in text and "<td class=open>awaiting grading</td>" in text
    grade_written_answer(course, "amy", 0.5)
    with Gradebook(course.db_url, "dl-course") as gb:
        gb.find_comment("q_mean", "tiny", "tiny", "amy").manual_comment = "Say why the mean is taken over rows."
        gb.db.commit()
    [page] = feedback(course, "tiny")  # again, into the folder of the first page
    text = page.read_text()
    assert "<h1>tiny: 5.5 / 6</h1>" in text and "<td class=fail>0.5 / 1</td>" in text
    assert "<li>instructor: Say why the mean is taken over rows.</li>" in text


def test_a_page_without_a_submission_time_and_scores_in_thirds(course):
    """A score of 2/3 reads 0.67 (rounded, never cut to a whole number); no time, no ", submitted"."""
    result = SubmissionResult("ben", "tiny", "graded", cells=[
        CellScore("test_double", "auto", 2.0, 2 / 3, [CheckResult(f"double/{i}", i == 0) for i in range(3)])])
    text = graded_page(course, result)
    assert "<h1>tiny: 0.67 / 6</h1>" in text and "<td class=fail>0.67 / 2</td>" in text
    assert "Student <b>ben</b>. Each test" in text


def test_two_checks_a_stopped_test_never_reached_are_one_line(course):
    result = SubmissionResult("dan", "tiny", "graded", cells=[
        CellScore("test_mean", "auto", 3.0, 1.0, [CheckResult("mean/0", True)]
                  + [CheckResult(f"mean/{i}", False, NOT_RECORDED) for i in (1, 2)], "NameError: name 'x' is not defined")])
    text = graded_page(course, result)
    assert ("<ul><li>the cell raised <code>NameError: name &#x27;x&#x27; is not defined</code></li>"
            "<li>none of its 2 checks was reached</li></ul>") in text and NOT_RECORDED not in text


def test_a_missing_written_answer_reads_no_response_and_no_other_does(course):
    """grade notes the answers a submission lacks; the gradebook's comment on that answer
    (shown by formgrader and on this page) says "No response.", and on no other answer."""
    release(course, "tiny")
    with GradebookWriter(course) as gb:
        for student, missing in (("nora", "q_mean"), ("dan", "double")):
            result = SubmissionResult(student, "tiny", "graded", cells=[CellScore("q_mean", "manual", 1.0, None)],
                                      notes=[missing_answer_note(missing)])
            result.save(course.autograded / student / "tiny" / "result.json")
            gb.record(load_assignment(course, "tiny"), result)
    pages = {p.parent.parent.name: p.read_text() for p in feedback(course, "tiny")}
    assert "<li>autograder: No response.</li>" in pages["nora"] and "instructor:" not in pages["nora"]
    assert "No response." not in pages["dan"]
    with Gradebook(course.db_url, "dl-course") as gb:  # the instructor's own comment replaces it
        gb.find_comment("q_mean", "tiny", "tiny", "nora").manual_comment = "Nothing here: ask for an extension."
        gb.db.commit()
    pages = {p.parent.parent.name: p.read_text() for p in feedback(course, "tiny")}
    assert "<li>instructor: Nothing here: ask for an extension.</li>" in pages["nora"]
    assert "No response." not in pages["nora"]


def test_a_missing_answer_leaves_no_comment_on_an_answer_whose_id_is_part_of_its_id(course):
    """'mean' is part of 'q_mean': nora answered mean, so formgrader must not say "No response." there."""
    release(course, "tiny")
    result = SubmissionResult("nora", "tiny", "graded", cells=[CellScore("q_mean", "manual", 1.0, None)],
                              notes=[missing_answer_note("q_mean")])
    with GradebookWriter(course) as gb:
        gb.record(load_assignment(course, "tiny"), result)
    with Gradebook(course.db_url, "dl-course") as gb:
        assert gb.find_comment("q_mean", "tiny", "tiny", "nora").auto_comment == "No response."
        assert gb.find_comment("mean", "tiny", "tiny", "nora").auto_comment is None
