"""``validate``: what a student runs before submitting.

Executes their notebook as they have it (the released version carries the visible tests
only), with the same sandboxed execution as grading, and says which tests pass, which
fail and why, and which answers are still unwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.cells import grade_id, is_answer, is_autograded_test, points, read_executed
from autograder.config import Limits
from autograder.execute import ExecutionJob, execute
from autograder.load import read_submission


@dataclass
class ValidationReport:
    passed: list[tuple[str, float]] = field(default_factory=list)
    failed: list[tuple[str, float, str]] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    answer_errors: list[tuple[str, str]] = field(default_factory=list)  # (grade id, "Type: message")
    missing_tests: list[str] = field(default_factory=list)  # released with the notebook, deleted since
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.unanswered or self.answer_errors or self.missing_tests or self.problems)


def validate(path: Path, parameters: dict | None = None, limits: Limits | None = None) -> ValidationReport:
    limits = limits or Limits()
    report = ValidationReport()
    nb, notes = read_submission(path, limits)
    report.problems += notes
    outcome = execute(ExecutionJob(nbformat.writes(nb), parameters or {}, limits, label="validate", own_work=True))
    if outcome.status != "ok":
        report.problems.append(outcome.message)
    released = nb.metadata.get("autograder", {})
    expected = released.get("tests", []) if isinstance(released, dict) else []
    present = {grade_id(cell) for cell in nb.cells}
    report.missing_tests = [str(t) for t in expected if t not in present]
    if outcome.notebook is None:
        return report
    for cell in read_executed(outcome.notebook).cells:
        gid = grade_id(cell)
        if cell.cell_type != "code" or gid is None:
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if is_answer(cell) and errors:
            if errors[0].get("ename") == "NotImplementedError":
                report.unanswered.append(gid)
            else:
                report.answer_errors.append((gid, f"{errors[0].get('ename')}: {errors[0].get('evalue')}"))
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
    lines = []
    for gid, pts in report.passed:
        lines.append(f"  PASS  {gid} ({pts:g} pt)")
    for gid, pts, why in report.failed:
        lines.append(f"  FAIL  {gid} ({pts:g} pt): {why}")
    for gid in report.unanswered:
        lines.append(f"  TODO  answer {gid!r} still raises NotImplementedError")
    for gid, why in report.answer_errors:
        lines.append(f"  ERROR answer {gid!r} raised {why}")
    for gid in report.missing_tests:
        lines.append(f"  GONE  test {gid!r} was deleted from your notebook: grading restores and runs it")
    for problem in report.problems:
        lines.append(f"  NOTE  {problem}")
    verdict = "all visible tests pass" if report.ok else "not ready"
    lines.append(f"{len(report.passed)} passed, {len(report.failed)} failed ({verdict}). "
                 "Hidden tests run only when your instructor grades.")
    return "\n".join(lines)
