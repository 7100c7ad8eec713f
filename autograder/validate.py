"""``validate``: what a student runs before submitting.

Executes their notebook as they have it (the released version carries the visible tests
only), in the same sandbox as grading and with its parameters (``quick`` training runs
unless ``--full``, offline data unless ``--data-source`` says otherwise; always on the
CPU), and says which tests pass, which fail and why, which answers are still unwritten or
raise, and which cells the grader would not find: answers and tests are matched by their
nbgrader grade ids (in the cells' metadata), so a deleted or re-created cell counts as
missing.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.cells import grade_id, is_answer, is_autograded_test, is_given, part_heading, points, read_executed
from autograder.config import Limits
from autograder.execute import ExecutionJob, execute
from autograder.load import read_submission
from autograder.tamper import scan


@dataclass
class ValidationReport:
    passed: list[tuple[str, float]] = field(default_factory=list)
    failed: list[tuple[str, float, str]] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    redefined: list[tuple[str, list[str]]] = field(default_factory=list)  # stubbed answers a later cell defines
    answer_errors: list[tuple[str, str]] = field(default_factory=list)  # (grade id, "Type: message")
    given_errors: list[tuple[str, str]] = field(default_factory=list)  # read-only cells that raised
    missing_tests: list[str] = field(default_factory=list)  # released with the notebook, deleted since
    missing_answers: list[str] = field(default_factory=list)  # answer cells the grader would not find
    for_review: list[str] = field(default_factory=list)  # what the grader's reading of the code flags
    problems: list[str] = field(default_factory=list)
    sections: dict[str, str] = field(default_factory=dict)  # test grade id -> the "## ..." heading above it

    @property
    def ok(self) -> bool:
        return bool(self.passed or self.failed) and not (
            self.failed or self.unanswered or self.answer_errors or self.given_errors or self.missing_tests
            or self.missing_answers or self.problems)


CODE_STUB = "raise NotImplementedError()"  # what release leaves in a code answer
TEXT_STUB = "YOUR ANSWER HERE"  # and in a written one


def _unwritten(cell) -> bool:
    """An answer cell still holding release's stub (functions defined around it run fine)."""
    return CODE_STUB in cell.source if cell.cell_type == "code" else cell.source.strip() in ("", TEXT_STUB)


def _top_level_names(source: str, holding_stub: bool = False) -> set[str]:
    """Functions and classes a cell defines; with ``holding_stub``, only those whose body still
    holds the stub. Empty for source that does not parse (IPython magics, a syntax error)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {node.name for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and (not holding_stub or CODE_STUB in (ast.get_source_segment(source, node) or ""))}


def _redefined_later(cells: list, index: int) -> list[str]:
    """The stubbed definitions of answer cell ``cells[index]`` if every one of them is defined
    again further down before the next test, which then runs that definition, as the grader
    does (assemble keeps added cells where the student put them); else []."""
    stubbed = _top_level_names(cells[index].source, holding_stub=True)
    later: set[str] = set()
    for cell in cells[index + 1:]:
        if is_autograded_test(cell):
            break
        if cell.cell_type == "code":
            later |= _top_level_names(cell.source)
    return sorted(stubbed) if stubbed and stubbed <= later else []


def validate(path: Path, parameters: dict | None = None, limits: Limits | None = None) -> ValidationReport:
    limits = limits or Limits()
    report = ValidationReport()
    nb, notes = read_submission(path, limits)
    report.problems += notes
    outcome = execute(ExecutionJob(nbformat.writes(nb), parameters or {}, limits, label="validate", own_work=True))
    if outcome.status != "ok":
        report.problems.append(outcome.message)
    released = nb.metadata.get("autograder", {})
    released = released if isinstance(released, dict) else {}
    present = {grade_id(cell) for cell in nb.cells} - {None}
    if not present:
        report.problems.append("no cell of this notebook carries the assignment's grade ids (nbgrader metadata): "
                               "was it re-created, or its cells pasted into a new notebook? The grader finds "
                               "answers by these ids and would find none; work in the notebook you downloaded")
    report.missing_tests = [str(t) for t in released.get("tests", []) if t not in present]
    report.missing_answers = [str(a) for a in released.get("answers", []) if a not in present]
    report.for_review = scan(nb)
    for index, cell in enumerate(nb.cells):
        if is_answer(cell) and _unwritten(cell):
            if cell.cell_type == "code" and (names := _redefined_later(nb.cells, index)):
                report.redefined.append((grade_id(cell), names))
            else:
                report.unanswered.append(grade_id(cell))
    if outcome.notebook is None:
        return report
    section = ""
    for cell in read_executed(outcome.notebook).cells:
        gid = grade_id(cell)
        if (heading := part_heading(cell)) is not None:
            section = heading
        if cell.cell_type != "code" or gid is None:
            continue
        if is_autograded_test(cell):
            report.sections[gid] = section
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if is_answer(cell) and errors:
            if errors[0].get("ename") == "NotImplementedError":
                if gid not in report.unanswered:
                    report.unanswered.append(gid)
            else:
                report.answer_errors.append((gid, f"{errors[0].get('ename')}: {errors[0].get('evalue')}"))
        elif errors and is_given(cell):  # given code that uses the answers
            why = f"{errors[0].get('ename')}: {errors[0].get('evalue')}".rstrip(": ")
            if errors[0].get("ename") == "NotImplementedError":
                why += " (an answer it uses is not written yet)"
            report.given_errors.append((gid, why))
        elif is_autograded_test(cell):
            if errors:
                why = f"{errors[0].get('ename')}: {errors[0].get('evalue')}".rstrip(": ")
                if errors[0].get("ename") == "NotImplementedError":
                    why += " (an answer this test uses is not written yet)"
                report.failed.append((gid, points(cell), why))
            elif cell.get("execution_count") is None:
                report.failed.append((gid, points(cell), "did not run"))
            else:
                report.passed.append((gid, points(cell)))
    return report


def format_report(report: ValidationReport) -> str:
    """Tests in notebook order under the headings of their parts, then everything else."""
    lines, section = [], ""
    verdicts = {gid: f"  PASS  {gid} ({pts:g} pt)" for gid, pts in report.passed}
    verdicts.update({gid: f"  FAIL  {gid} ({pts:g} pt): {why}" for gid, pts, why in report.failed})
    position = {gid: i for i, gid in enumerate(report.sections)}  # notebook order
    for gid in sorted(verdicts, key=lambda g: position.get(g, len(position))):
        if report.sections.get(gid, section) != section:
            section = report.sections[gid]
            lines.append(section)
        lines.append(verdicts[gid])
    for gid in report.unanswered:
        lines.append(f"  TODO  answer {gid!r} is not written yet (its cell still holds the stub; the grader "
                     "takes answers from their own cells)")
    for gid, names in report.redefined:
        lines.append(f"  NOTE  answer {gid!r} still holds the stub, but a cell of yours further down defines "
                     f"{', '.join(names)} again: that definition is what the tests ran and what is graded "
                     "(moving it into the answer cell is tidier)")
    for gid, why in report.answer_errors:
        lines.append(f"  ERROR answer {gid!r} raised {why}")
    for gid, why in report.given_errors:
        lines.append(f"  ERROR the given cell {gid!r} raised {why}: tests that use what it makes fail with it")
    for gid in report.missing_tests:
        lines.append(f"  GONE  test {gid!r} was deleted from your notebook: grading restores and runs it")
    for gid in report.missing_answers:
        lines.append(f"  GONE  answer cell {gid!r} is missing (deleted, or its nbgrader metadata lost: the grader "
                     "finds answers by the grade id in each cell's metadata, not by Jupyter's cell id) and counts "
                     "as unanswered; write the answer in that cell of the downloaded notebook")
    for problem in report.problems:
        lines.append(f"  NOTE  {problem}")
    for finding in report.for_review:  # not a failure: the instructor looks at it
        lines.append(f"  NOTE  the grader will flag this for your instructor's review: {finding}")
    if not (report.passed or report.failed):
        verdict = "no visible test ran"
    else:
        verdict = "all visible tests pass" if report.ok else "not ready"
    lines.append(f"{len(report.passed)} passed, {len(report.failed)} failed ({verdict}). "
                 "Hidden tests run only when your instructor grades; a test's points are split evenly over its "
                 "checks, hidden ones included, so a failing test may still earn part of them.")
    return "\n".join(lines)
