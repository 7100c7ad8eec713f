"""``export``: a CSV of grades and a report with plots; the LMS's own grade files filled in.

Scores are read from the gradebook, so an instructor's manual grades (and overrides of
automatic ones) are what gets exported. Each row also says when the submission was made
(``timestamp.txt`` of ``collect``) and whether the LMS marked it late; given a due time,
how many hours late it was. No penalty is applied: the policy is the instructor's.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from nbgrader.api import Gradebook, MissingEntry  # noqa: E402

from autograder.canvas import Gradebook as CanvasGradebook  # noqa: E402
from autograder.canvas import assignment_column, write_gradebook  # noqa: E402
from autograder.collect import collected_lms_id, lms_marked_late, submission_time  # noqa: E402
from autograder.config import Course, ensure_tools_on_path  # noqa: E402
from autograder.gradebook import students_with_grades  # noqa: E402
from autograder.results import graded_results  # noqa: E402
from autograder.source import Assignment, load_assignment  # noqa: E402
from autograder.worksheet import Grade, Worksheet, write_feedback_zip, write_grades  # noqa: E402


@dataclass
class Row:
    student: str
    lms_id: str  # the LMS's id of the student, where collect found one (Canvas, Moodle)
    scores: dict[str, float | None]  # grade_id -> final score (None: not graded yet)
    total: float
    status: str
    seconds: float
    problems: str
    submitted: datetime | None = None  # UTC, from collect's timestamp.txt (None: not known)
    lms_late: bool = False  # the LMS marked it late (Canvas)

    def hours_late(self, due: datetime | None) -> float | None:
        """Hours after ``due`` it was submitted, rounded up to 0.01 h (36 s), so a few seconds
        late never reads as on time; 0 when on time, None without both times."""
        if due is None or self.submitted is None:
            return None
        late = self.submitted - due
        return -(-late // timedelta(seconds=36)) / 100 if late > timedelta(0) else 0.0  # exact: no float rounding


def final_scores(course: Course, assignment: Assignment) -> list[Row]:
    """One row per student with a result, grades in the gradebook, or a collected
    submission: manual scores where given, else automatic ones."""
    ensure_tools_on_path()
    name = assignment.name
    rows: list[Row] = []
    results = {r.student: r for r in graded_results(course.autograded, name)}
    # Every student folder holding the assignment, as grade.find_submissions counts them.
    collected = {folder.parent.name for folder in course.submitted.glob(f"*/{name}") if folder.is_dir()}
    with Gradebook(course.db_url, "dl-course") as gb:
        in_gradebook = students_with_grades(gb, course.db_url, name, set(results))
        for student in sorted(set(results) | in_gradebook | collected):
            scores: dict[str, float | None] = dict.fromkeys((c.grade_id for c in assignment.graded_cells), None)
            for gid in scores if student in in_gradebook else []:
                try:
                    grade = gb.find_grade(gid, name, name, student)
                    scores[gid] = grade.score if not grade.needs_manual_grade else None
                except MissingEntry:
                    pass
            result = results.get(student)
            if result is not None:
                status, seconds, problems = result.status, result.seconds, " | ".join(result.problems)
            elif student in in_gradebook:
                status, seconds, problems = "graded", 0.0, "no result under autograded/ (removed?): scores from the gradebook"
            else:
                status, seconds, problems = "not graded", 0.0, "collected, not graded yet: run grade"
            total = sum(v or 0.0 for v in scores.values())
            folder = course.submitted / student / name
            # The graded submission's time; one collected since is named, not silently mixed in.
            submitted = collected_at = submission_time(folder)
            if result is not None and result.submitted_at:
                submitted = datetime.fromisoformat(result.submitted_at)
                if collected_at is not None and collected_at != submitted:
                    problems = " | ".join(filter(None, [problems, "a newer submission was collected after grading "
                                                                  f"({_utc(collected_at)}): run grade"]))
            rows.append(Row(student, collected_lms_id(folder), scores, total, status, seconds, problems,
                            submitted, lms_marked_late(folder)))
    _flag_shared_lms_ids(rows)
    return rows


def _flag_shared_lms_ids(rows: list[Row]) -> None:
    """Name LMS ids that several students hold: a grade uploaded by id would reach one person twice.

    Students can write ``lms_id.txt`` beside their notebook where nbgrader's exchange
    collects their folders; and a class collected both with and without a Moodle worksheet
    holds each Moodle student twice.
    """
    holders: dict[str, list[str]] = {}
    for row in rows:
        if row.lms_id:
            holders.setdefault(row.lms_id.lstrip("0") or "0", []).append(row.student)
    for row in rows:
        others = [s for s in holders.get(row.lms_id.lstrip("0") or "0", []) if s != row.student] if row.lms_id else []
        if others:
            row.problems = " | ".join(filter(None, [row.problems, f"LMS id {row.lms_id} is also "
                                                                  f"{', '.join(others)}'s: check its lms_id.txt"]))


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _utc(when: datetime | None) -> str:
    return "" if when is None else when.strftime("%Y-%m-%d %H:%M:%S UTC")


def _hours(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


def _lateness(row: Row, due: datetime | None) -> str:
    """What the report says of a submission's time: late by how much, and the LMS's mark."""
    hours = row.hours_late(due)
    said = [] if not hours else [f"{_hours(hours)} h late"]
    return ", ".join(said + (["marked late by the LMS"] if row.lms_late else []))


def _upload_grades(rows: list[Row], points: dict[str, float]) -> list[Grade]:
    """What goes back to the LMS: totals of submissions graded in full without a flag."""
    grades = []
    for row in rows:
        pending = sum(p for gid, p in points.items() if row.scores[gid] is None)
        held_back = ("not graded" if row.status == "not graded" else f"status {row.status}" if row.status != "graded"
                     else f"{pending:g} point{'' if pending == 1 else 's'} not graded yet" if pending else "")
        grades.append(Grade(row.student, row.lms_id, None if held_back else row.total, held_back))
    return grades


@dataclass
class LmsFiles:
    """What ``export --worksheet`` or ``--canvas-gradebook`` writes for the LMS's uploads."""

    grades: Path  # the LMS's own file with this assignment's grades filled in
    feedback_zip: Path | None  # Moodle: the same students' feedback pages (None: none written yet)
    filled: int  # grades filled in
    notes: list[str]


def _lms_grades(course: Course, name: str, rows: list[Row] | None) -> tuple[Assignment, list[Grade]]:
    assignment = load_assignment(course, name)
    points = {c.grade_id: c.points for c in assignment.graded_cells}
    return assignment, _upload_grades(final_scores(course, assignment) if rows is None else rows, points)


def moodle_files(course: Course, name: str, worksheet: Worksheet, rows: list[Row] | None = None) -> LmsFiles:
    """Write ``exports/<name>-moodle.csv`` (``worksheet`` with the Grade column filled in) and
    ``exports/<name>-moodle-feedback.zip`` (the feedback pages of the same students).

    A grade is filled in only where the submission was graded in full and not flagged; the
    others are left blank and named (:func:`autograder.worksheet.write_grades`). ``rows``:
    the :func:`final_scores` that :func:`export` wrote (default: read them now).
    """
    assignment, grades = _lms_grades(course, name, rows)
    sheet = course.exports / f"{name}-moodle.csv"
    filled, notes = write_grades(worksheet, grades, assignment.max_score, sheet)
    pages = {g.number: page for g in filled if (page := course.feedback / g.student / name / "feedback.html").is_file()}
    missing = sorted(g.student for g in filled if g.number not in pages)
    if missing:
        notes.append(f"no feedback page (run feedback {name}): {', '.join(missing)}")
    feedback_zip = course.exports / f"{name}-moodle-feedback.zip"
    feedback_zip.unlink(missing_ok=True)  # never a stale zip beside a new worksheet
    if pages:
        write_feedback_zip(pages, feedback_zip)
    return LmsFiles(sheet, feedback_zip if pages else None, len(filled), notes)


def canvas_file(course: Course, name: str, gradebook: CanvasGradebook, column: str | None = None,
                rows: list[Row] | None = None) -> LmsFiles:
    """Write ``exports/<name>-canvas.csv``: the assignment's column of a Canvas gradebook export
    filled in by Canvas user id (:func:`autograder.canvas.write_gradebook`), for its import;
    ``rows`` as in :func:`moodle_files`."""
    assignment, grades = _lms_grades(course, name, rows)
    out = course.exports / f"{name}-canvas.csv"
    filled, notes = write_gradebook(gradebook, assignment_column(gradebook, name, column), grades,
                                    assignment.max_score, out)
    return LmsFiles(out, None, len(filled), notes)


def export(course: Course, name: str, due: datetime | None = None,
           rows: list[Row] | None = None) -> tuple[Path, Path]:
    """Write ``exports/<name>.csv`` and ``exports/<name>-report.html``; return both paths.

    ``due`` (timezone-aware) adds how many hours after it each submission came; ``rows``:
    the :func:`final_scores` to write (default: read them now).
    """
    if due is not None and due.tzinfo is None:
        raise ValueError("due must carry a time zone (datetime.astimezone() gives the local one)")
    assignment = load_assignment(course, name)
    rows = final_scores(course, assignment) if rows is None else rows
    course.exports.mkdir(parents=True, exist_ok=True)
    ids = [c.grade_id for c in assignment.graded_cells]
    points = {c.grade_id: c.points for c in assignment.graded_cells}
    csv_path = course.exports / f"{name}.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        # pending_points: points of questions not graded yet, so that a partial total is
        # not read as final (total / max_score would understate the grade).
        writer.writerow(["student", "lms_id", *ids, "total", "max_score", "status", "needs_manual_grading",
                         "pending_points", "problems", "submitted_at", "hours_late", "lms_marked_late"])
        for row in rows:
            cells = ["" if row.scores[i] is None else f"{row.scores[i]:g}" for i in ids]
            pending = sum(points[i] for i in ids if row.scores[i] is None)
            writer.writerow([row.student, row.lms_id, *cells, f"{row.total:g}", f"{assignment.max_score:g}", row.status,
                             pending > 0, f"{pending:g}", row.problems, _utc(row.submitted), _hours(row.hours_late(due)),
                             row.lms_late])

    figures = []
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(ids)), 3.2))
    data = [[r.scores[i] for r in rows if r.scores[i] is not None] for i in ids]
    labels = [gid if values else f"{gid}\n(not graded)" for gid, values in zip(ids, data, strict=True)]
    ax.boxplot([d or [float("nan")] for d in data], tick_labels=labels, showmeans=True)  # nan: no box
    for x, (gid, values) in enumerate(zip(ids, data, strict=True), start=1):
        ax.scatter([x] * len(values), values, s=12, alpha=0.6)
        ax.hlines(points[gid], x - 0.3, x + 0.3, colors="gray", linestyles="dotted")
    ax.set_ylabel("score (dotted: maximum)")
    ax.set_title(f"{name}: score distribution per question (n={len(rows)})")
    ax.tick_params(axis="x", rotation=30)
    figures.append(("Scores per question", _png(fig)))
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(rows)), 3))
    ax.bar([r.student for r in rows], [r.seconds for r in rows], color=["tab:red" if r.status != "graded" else "tab:blue" for r in rows])
    ax.set_ylabel("seconds")
    ax.set_title("Grading time per submission (red: problems)")
    ax.tick_params(axis="x", rotation=60)
    figures.append(("Time per submission", _png(fig)))
    report = course.exports / f"{name}-report.html"
    table = "".join(
        f"<tr><td>{html.escape(r.student)}</td><td>{round(r.total, 2):g}</td><td>{html.escape(r.status)}</td>"
        f"<td>{'' if r.submitted is None else r.submitted.strftime('%Y-%m-%d %H:%M UTC')}</td>"
        f"<td>{html.escape(_lateness(r, due))}</td>"
        f"<td>{r.seconds:.1f}</td><td>{html.escape(r.problems)}</td></tr>" for r in rows
    )
    late = sum(1 for r in rows if r.hours_late(due) or r.lms_late)
    lateness = (f"{late} submitted after {due.isoformat(sep=' ', timespec='minutes')} or marked late by the LMS"
                if due is not None else f"{late} marked late by the LMS (export --due adds hours late)")
    body = "".join(f"<h2>{t}</h2><img alt='{t}' src='data:image/png;base64,{data}'>" for t, data in figures)
    report.write_text(
        f"<!doctype html><meta charset='utf-8'><title>{name} grades</title>"
        f"<h1>{html.escape(name)}: {len(rows)} submissions, maximum {assignment.max_score:g}</h1>"
        f"<p>{html.escape(lateness)}.</p>{body}"
        f"<h2>Submissions</h2><table border=1 cellpadding=4><tr><th>student</th><th>total</th><th>status</th>"
        f"<th>submitted</th><th>late</th><th>seconds</th><th>problems</th></tr>{table}</table>",
        encoding="utf-8",
    )
    return csv_path, report
