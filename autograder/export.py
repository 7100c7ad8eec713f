"""``export``: a CSV of grades and a report with plots.

Scores are read from the gradebook, so an instructor's manual grades (and overrides of
automatic ones) are what gets exported.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from nbgrader.api import Gradebook, MissingEntry  # noqa: E402

from autograder.config import Course, ensure_tools_on_path  # noqa: E402
from autograder.gradebook import students_with_grades  # noqa: E402
from autograder.results import graded_results  # noqa: E402
from autograder.source import Assignment, load_assignment  # noqa: E402


@dataclass
class Row:
    student: str
    lms_id: str  # the LMS's id of the student, where collect found one (Canvas, Moodle)
    scores: dict[str, float | None]  # grade_id -> final score (None: not graded yet)
    total: float
    status: str
    seconds: float
    problems: str


def final_scores(course: Course, assignment: Assignment) -> list[Row]:
    """One row per student with a result, grades in the gradebook, or a collected
    submission: manual scores where given, else automatic ones."""
    ensure_tools_on_path()
    name = assignment.name
    rows: list[Row] = []
    results = {r.student: r for r in graded_results(course.autograded, name)}
    collected = {p.parent.parent.name for p in course.submitted.glob(f"*/{name}/*.ipynb")}
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
            lms_file = course.submitted / student / name / "lms_id.txt"
            lms_id = lms_file.read_text().strip() if lms_file.is_file() else ""
            rows.append(Row(student, lms_id, scores, total, status, seconds, problems))
    return rows


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def export(course: Course, name: str) -> tuple[Path, Path]:
    """Write ``exports/<name>.csv`` and ``exports/<name>-report.html``; return both paths."""
    assignment = load_assignment(course, name)
    rows = final_scores(course, assignment)
    course.exports.mkdir(parents=True, exist_ok=True)
    ids = [c.grade_id for c in assignment.graded_cells]
    points = {c.grade_id: c.points for c in assignment.graded_cells}
    csv_path = course.exports / f"{name}.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        # pending_points: points of questions not graded yet, so that a partial total is
        # not read as final (total / max_score would understate the grade).
        writer.writerow(["student", "lms_id", *ids, "total", "max_score", "status", "needs_manual_grading",
                         "pending_points", "problems"])
        for row in rows:
            cells = ["" if row.scores[i] is None else f"{row.scores[i]:g}" for i in ids]
            pending = sum(points[i] for i in ids if row.scores[i] is None)
            writer.writerow([row.student, row.lms_id, *cells, f"{row.total:g}", f"{assignment.max_score:g}", row.status,
                             pending > 0, f"{pending:g}", row.problems])

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
        f"<td>{r.seconds:.1f}</td><td>{html.escape(r.problems)}</td></tr>" for r in rows
    )
    body = "".join(f"<h2>{t}</h2><img alt='{t}' src='data:image/png;base64,{data}'>" for t, data in figures)
    report.write_text(
        f"<!doctype html><meta charset='utf-8'><title>{name} grades</title>"
        f"<h1>{html.escape(name)}: {len(rows)} submissions, maximum {assignment.max_score:g}</h1>{body}"
        f"<h2>Submissions</h2><table border=1 cellpadding=4><tr><th>student</th><th>total</th><th>status</th>"
        f"<th>seconds</th><th>problems</th></tr>{table}</table>",
        encoding="utf-8",
    )
    return csv_path, report
