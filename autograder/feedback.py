"""``feedback``: one HTML page per student: scores per question, what failed and why,
and the instructor's comments. Hidden tests' code and tracebacks are never shown."""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from autograder.config import Course, ensure_tools_on_path
from autograder.gradebook import students_with_grades
from autograder.results import graded_results
from autograder.source import load_assignment

STYLE = """body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;line-height:1.45}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35rem;text-align:left;vertical-align:top}
.pass{color:#1a7f37}.fail{color:#cf222e}.open{color:#9a6700}small{color:#555}"""


def _submitted(iso: str) -> str:
    return "" if not iso else f", submitted {datetime.fromisoformat(iso):%Y-%m-%d %H:%M:%S} UTC"


def feedback(course: Course, name: str) -> list[Path]:
    """Write ``feedback/<student>/<name>/feedback.html`` for every graded student."""
    ensure_tools_on_path()
    assignment = load_assignment(course, name)
    sections = {c.grade_id: c.section for c in assignment.graded_cells}
    written: list[Path] = []
    results = graded_results(course.autograded, name)
    with Gradebook(course.db_url, "dl-course") as gb:
        students_with_grades(gb, course.db_url, name, {r.student for r in results})
        for result in results:
            rows, total = [], 0.0
            for cell in result.cells:
                try:
                    grade = gb.find_grade(cell.grade_id, name, name, result.student)
                    score = grade.score if not grade.needs_manual_grade else None
                    comment = gb.find_comment(cell.grade_id, name, name, result.student) if cell.kind == "manual" else None
                except MissingEntry:
                    score, comment = cell.score, None
                total += score or 0.0
                status = "open" if score is None else ("pass" if score >= cell.points else "fail")
                shown = "awaiting grading" if score is None else f"{round(score, 2):g} / {cell.points:g}"
                failed = [k for k in cell.checks if not k.passed]
                unrecorded = [k for k in failed if k.message.startswith("not recorded")]
                if cell.error and unrecorded == failed and len(failed) > 1:  # one line, not one per check
                    details = [f"<li>none of its {len(failed)} checks was reached</li>"]
                else:
                    details = [f"<li>{html.escape(k.name)}: {html.escape(k.message)}</li>" for k in failed]
                if cell.error:
                    details.insert(0, f"<li>the cell raised <code>{html.escape(cell.error)}</code></li>")
                # nbgrader shows the instructor's comment in place of the grader's ("No response.").
                if comment is not None and comment.manual_comment:
                    details.append(f"<li>instructor: {html.escape(comment.manual_comment)}</li>")
                elif comment is not None and comment.auto_comment:
                    details.append(f"<li>autograder: {html.escape(comment.auto_comment)}</li>")
                section = sections.get(cell.grade_id, "")
                label = (f"{html.escape(section)}<br><small>{html.escape(cell.grade_id)}</small>" if section
                         else html.escape(cell.grade_id))
                rows.append(
                    f"<tr><td>{label}</td><td class={status}>{shown}</td>"
                    f"<td><ul>{''.join(details)}</ul></td></tr>"
                )
            problems = "".join(f"<li>{html.escape(p)}</li>" for p in result.problems + result.notes)
            page = (
                f"<!doctype html><meta charset='utf-8'><title>{name}: feedback for {html.escape(result.student)}</title>"
                f"<style>{STYLE}</style><h1>{html.escape(name)}: {round(total, 2):g} / {assignment.max_score:g}</h1>"
                f"<p>Student <b>{html.escape(result.student)}</b>{_submitted(result.submitted_at)}. "
                "Each test's points are split evenly over its checks.</p>"
                + (f"<h2>About your submission</h2><ul>{problems}</ul>" if problems else "")
                + f"<h2>Questions</h2><table><tr><th>question</th><th>score</th><th>what to look at</th></tr>{''.join(rows)}</table>"
            )
            out = course.feedback / result.student / name / "feedback.html"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(page, encoding="utf-8")
            written.append(out)
    return written
