"""The exported CSV: one row per student (graded, in the gradebook, or collected), with the
LMS's id where collect found one; never rows read from the wrong gradebook."""

import csv
import math
import time
from datetime import datetime, timedelta, timezone

import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_hex

from autograder.cli import due_time
from autograder.export import export
from autograder.gradebook import GradebookWriter
from autograder.source import load_assignment
from tests.autograder.conftest import grade_written_answer, graded


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


def test_an_lms_id_two_students_hold_is_named(course):
    """A grade uploaded by LMS id would reach one person twice (a planted lms_id.txt, say)."""
    for student, lms_id in (("doejane", "1234"), ("mallory", "01234"), ("local", "")):
        graded(course, student, 2.0)
        if lms_id:
            (course.submitted / student / "tiny").mkdir(parents=True)
            (course.submitted / student / "tiny" / "lms_id.txt").write_text(lms_id)
    rows = read_rows(export(course, "tiny")[0])
    assert rows["doejane"]["problems"] == "LMS id 1234 is also mallory's: check its lms_id.txt"
    assert rows["mallory"]["problems"] == "LMS id 01234 is also doejane's: check its lms_id.txt"
    assert rows["local"]["problems"] == ""


def test_no_student_is_left_out(course):
    """A student collected but not graded yet, and one whose result file was removed (say by
    make clean) while the gradebook keeps the grades, both get a row that says so."""
    graded(course, "graded", 2.0)
    graded(course, "cleaned", 2.0)
    (course.autograded / "cleaned").rename(course.root / "gone")
    (course.submitted / "late" / "tiny").mkdir(parents=True)
    (course.submitted / "late" / "tiny" / "tiny.ipynb").write_text("{}")
    (course.submitted / "no_notebook" / "tiny").mkdir(parents=True)  # grade lists it as a problem
    (course.submitted / "no_notebook" / "tiny" / "tiny.py").write_text("x = 1\n")
    rows = read_rows(export(course, "tiny")[0])
    assert sorted(rows) == ["cleaned", "graded", "late", "no_notebook"]
    assert rows["cleaned"]["total"] == "5" and "scores from the gradebook" in rows["cleaned"]["problems"]
    assert rows["late"]["status"] == "not graded" and rows["late"]["total"] == "0"
    assert rows["late"]["pending_points"] == "6" and "run grade" in rows["late"]["problems"]


def submitted_at(course, student: str, when: datetime, lms_late: bool = False) -> None:
    """What collect leaves beside a notebook: nbgrader's timestamp.txt, and the LMS's late mark."""
    folder = course.submitted / student / "tiny"
    folder.mkdir(parents=True)
    (folder / "tiny.ipynb").write_text("{}")
    (folder / "timestamp.txt").write_text(when.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
    if lms_late:
        (folder / "lms_late.txt").write_text("marked late by the LMS\n")


def test_rows_say_when_each_submission_came_and_how_late(course):
    due = datetime(2026, 12, 1, 23, 59, tzinfo=timezone(timedelta(hours=1)))  # 22:59 UTC
    for student, when, lms_late in (
        ("early", datetime(2026, 12, 1, 12, 0), False),
        ("seconds", datetime(2026, 12, 1, 22, 59, 10), False),  # 10 s late: never rounded to on time
        ("exact", datetime(2026, 12, 1, 23, 3, 12), False),  # 252 s = 0.07 h exactly, not 0.08
        ("hours", datetime(2026, 12, 2, 1, 29), False),
        ("canvas", datetime(2026, 12, 1, 20, 0), True),  # on time by our clock, late by the LMS's
    ):
        graded(course, student, 2.0)
        submitted_at(course, student, when.replace(tzinfo=timezone.utc), lms_late)
    graded(course, "unknown", 2.0)  # a result but no collected folder: no time to judge by

    csv_path, report = export(course, "tiny", due)
    rows = read_rows(csv_path)
    assert {s: rows[s]["hours_late"] for s in rows} == {
        "early": "0", "seconds": "0.01", "exact": "0.07", "hours": "2.5", "canvas": "0", "unknown": ""}
    assert rows["hours"]["submitted_at"] == "2026-12-02 01:29:00 UTC" and rows["unknown"]["submitted_at"] == ""
    assert [s for s in rows if rows[s]["lms_marked_late"] == "True"] == ["canvas"]
    page = report.read_text()
    assert "4 submitted after 2026-12-01 23:59+01:00 or marked late by the LMS." in page
    assert "<td>2.5 h late</td>" in page and "<td>marked late by the LMS</td>" in page

    rows = read_rows(export(course, "tiny")[0])  # no due time: times and marks, no hours
    assert {rows[s]["hours_late"] for s in rows} == {""} and rows["early"]["submitted_at"] == "2026-12-01 12:00:00 UTC"
    assert "1 marked late by the LMS (export --due adds hours late)." in report.read_text()
    with pytest.raises(ValueError, match="time zone"):
        export(course, "tiny", datetime(2026, 12, 1, 23, 59))


def test_a_row_keeps_the_graded_submissions_time_and_names_a_newer_one(course):
    result = graded(course, "amy", 2.0)
    submitted_at(course, "amy", datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc))
    result.submitted_at = "2026-11-30T09:00:00+00:00"  # what was graded; collected again since
    result.save(course.autograded / "amy" / "tiny" / "result.json")
    row = read_rows(export(course, "tiny")[0])["amy"]
    assert row["submitted_at"] == "2026-11-30 09:00:00 UTC"
    assert "a newer submission was collected after grading (2026-12-01 12:00:00 UTC): run grade" in row["problems"]


@pytest.fixture
def india_time(monkeypatch):
    """A local time zone that is not UTC (the grader's machine need not be in UTC)."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_due_times_without_an_offset_are_local_time(india_time):
    assert due_time("2026-12-01 23:59").utcoffset() == timedelta(hours=5, minutes=30)
    assert due_time("2026-12-01T23:59+01:00").utcoffset() == timedelta(hours=1)
    assert due_time("2026-12-01T23:59Z").utcoffset() == timedelta(0)
    with pytest.raises(Exception, match="is not a date and time"):
        due_time("friday")
    with pytest.raises(Exception, match="has no time of day"):  # it would mean 00:00, the day before
        due_time("2026-12-01")


def test_another_gradebook_is_an_error_not_a_sheet_of_zeros(course, tmp_path):
    graded(course, "alice", 2.0, in_gradebook=False)  # graded into some other database
    with pytest.raises(ValueError, match="holds no grades of 'tiny'"):
        export(course, "tiny")
    assert not (course.exports / "tiny.csv").exists()


def test_a_written_answer_is_pending_until_graded_and_its_grade_survives_grading_again(course):
    result = graded(course, "amy", 2.0)
    row = read_rows(export(course, "tiny")[0])["amy"]
    assert [row[k] for k in ("q_mean", "total", "needs_manual_grading", "pending_points")] == ["", "5", "True", "1"]
    grade_written_answer(course, "amy", 0.5)
    with GradebookWriter(course) as gb:  # graded again (a fixed test, say): the instructor's grade stays
        gb.record(load_assignment(course, "tiny"), result)
    row = read_rows(export(course, "tiny")[0])["amy"]
    assert [row[k] for k in ("q_mean", "total", "needs_manual_grading", "pending_points")] == ["0.5", "5.5", "False", "0"]


def test_a_submission_graded_as_collected_has_no_newer_one(course):
    result = graded(course, "amy", 2.0)
    submitted_at(course, "amy", datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc))
    result.submitted_at = "2026-12-01T12:00:00+00:00"  # what grade read from timestamp.txt
    result.save(course.autograded / "amy" / "tiny" / "result.json")
    row = read_rows(export(course, "tiny")[0])["amy"]
    assert row["submitted_at"] == "2026-12-01 12:00:00 UTC" and row["problems"] == ""


def test_the_report_lists_every_submission_under_its_plots(course):
    graded(course, "graded", 2.0)
    graded(course, "cleaned", 2.0)
    (course.autograded / "cleaned").rename(course.root / "gone")  # scores from the gradebook only
    (course.submitted / "late" / "tiny").mkdir(parents=True)
    (course.submitted / "late" / "tiny" / "tiny.ipynb").write_text("{}")
    page = export(course, "tiny")[1].read_text()
    assert page.count("src='data:image/png;base64,iVBORw0KGgo") == 2  # the PNG signature: real images
    assert "<tr><td>late</td><td>0</td><td>not graded</td><td></td><td></td><td>0.0</td>" in page
    assert "<tr><td>cleaned</td><td>5</td><td>graded</td><td></td><td></td><td>0.0</td>" in page


def test_the_plots_show_each_questions_scores_and_flag_the_submissions_with_problems(course, monkeypatch):
    """The report's first plot: each question's graded scores at its box, with its mean and its
    maximum dotted across it; a question no one's answer is graded in yet is labelled so. The
    second: grading time per submission, red where the status is not 'graded'."""
    import autograder.export

    graded(course, "amy", 2.0)
    result = graded(course, "bob", 0.0)
    result.status, result.seconds = "problem", 7.5  # graded, but flagged (a timeout, say)
    result.save(course.autograded / "bob" / "tiny" / "result.json")
    figures = []
    monkeypatch.setattr(autograder.export, "_png", lambda fig: figures.append(fig) or "")
    export(course, "tiny")
    scores, times = (fig.axes[0] for fig in figures)

    assert scores.get_title() == "tiny: score distribution per question (n=2)"
    assert [t.get_text() for t in scores.get_xticklabels()] == ["test_double", "test_mean", "q_mean\n(not graded)"]
    assert [c.get_offsets().tolist() for c in scores.collections if isinstance(c, PathCollection)] == [
        [[1, 2], [1, 0]], [[2, 3], [2, 3]], []]  # amy's and bob's scores above their question
    assert [c.get_segments()[0].tolist() for c in scores.collections if isinstance(c, LineCollection)] == [
        [[0.7, 2], [1.3, 2]], [[1.7, 3], [2.3, 3]], [[2.7, 1], [3.3, 1]]]  # each question's maximum
    means = [(line.get_xdata()[0], line.get_ydata()[0]) for line in scores.lines if line.get_marker() == "^"]
    assert means[:2] == [(1, 1.0), (2, 3.0)] and means[2][0] == 3 and math.isnan(means[2][1])  # no box: not graded
    assert [t.get_text() for t in times.get_xticklabels()] == ["amy", "bob"]
    assert [(bar.get_height(), to_hex(bar.get_facecolor())) for bar in times.patches] == [
        (0.0, to_hex("tab:blue")), (7.5, to_hex("tab:red"))]
