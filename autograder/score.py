"""Step 4: score each graded cell from the comparison of records."""

from __future__ import annotations

from collections import defaultdict

from autograder.cells import grade_id, read_executed
from autograder.execute import ExecutionOutcome
from autograder.records import compare
from autograder.reference import Reference
from autograder.results import CellScore
from autograder.source import Assignment


def cell_errors(notebook: str | None) -> dict[str, str]:
    """``grade_id -> "Type: message"`` of the cells that raised (no traceback: it may show hidden tests)."""
    if notebook is None:
        return {}
    errors: dict[str, str] = {}
    for cell in read_executed(notebook).cells:
        gid = grade_id(cell)
        for out in cell.get("outputs", []) if gid else []:
            if out.get("output_type") == "error":
                errors[gid] = f"{out.get('ename', 'Error')}: {str(out.get('evalue', ''))[:500]}"
    return errors


def score_cells(assignment: Assignment, reference: Reference, outcome: ExecutionOutcome | None) -> list[CellScore]:
    """Points per graded cell: a test cell's points are split evenly over its checks."""
    by_name: dict[str, list[dict]] = defaultdict(list)
    for record in outcome.records if outcome else []:
        by_name[record["name"]].append(record)
    errors = cell_errors(outcome.notebook if outcome else None)
    cells: list[CellScore] = []
    for graded in assignment.graded_cells:
        if outcome is None:  # nothing could run: every test scores 0, manual cells stay open
            cells.append(CellScore(graded.grade_id, graded.kind, graded.points, None if graded.kind == "manual" else 0.0))
            continue
        if graded.kind == "manual":
            cells.append(CellScore(graded.grade_id, "manual", graded.points, None))
            continue
        expected = reference.records[graded.grade_id]
        checks = [compare(ref, by_name.get(ref["name"], [])) for ref in expected]
        passed = sum(c.passed for c in checks)
        score = round(graded.points * passed / len(checks), 4)
        cells.append(CellScore(graded.grade_id, "auto", graded.points, score, checks, errors.get(graded.grade_id, "")))
    return cells
