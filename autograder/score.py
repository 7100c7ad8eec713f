"""Step 4: score each graded cell from the comparison of records."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from nbformat import NotebookNode

from autograder.cells import grade_id, is_answer
from autograder.execute import ExecutionOutcome
from autograder.records import compare
from autograder.reference import Reference
from autograder.results import CellScore
from autograder.source import Assignment


def _errors(executed: NotebookNode) -> Iterator[tuple[NotebookNode, str, str]]:
    """``(cell, type, message)`` of each error a cell with a grade id raised (no traceback:
    it may show hidden tests)."""
    for cell in executed.cells:
        for out in cell.get("outputs", []) if grade_id(cell) else []:
            if out.get("output_type") == "error":
                yield cell, str(out.get("ename", "Error")), str(out.get("evalue", ""))[:500]


def cell_errors(executed: NotebookNode | None) -> dict[str, str]:
    """``grade_id -> "Type: message"`` of the cells that raised."""
    return {grade_id(cell): f"{name}: {value}" for cell, name, value in _errors(executed)} if executed else {}


def answer_errors(executed: NotebookNode | None) -> list[str]:
    """What the student's own answer cells raised, one sentence each, for their feedback.

    The error of an answer cell otherwise shows only as a ``NameError`` in the tests that
    use what it failed to define.
    """
    found = []
    for cell, name, value in _errors(executed) if executed else []:
        if cell.cell_type != "code" or not is_answer(cell):
            continue
        if name == "NotImplementedError":
            found.append(f"answer cell {grade_id(cell)!r} is not written yet (it raises NotImplementedError)")
        else:
            found.append(f"answer cell {grade_id(cell)!r} raised {name}: {value}".rstrip(": "))
    return found


def cell_ranges(executed: NotebookNode | None) -> dict[str, range]:
    """``grade_id -> lines of checks.jsonl written while that cell ran``, as the runner noted them."""
    ranges: dict[str, range] = {}
    start = 0
    for cell in executed.cells if executed else []:
        end = cell.get("metadata", {}).get("autograder", {}).get("records_end")
        if cell.cell_type != "code" or not isinstance(end, int):
            continue
        gid = grade_id(cell)
        if gid:
            ranges[gid] = range(start, max(start, end))
        start = end
    return ranges


def score_cells(assignment: Assignment, reference: Reference, outcome: ExecutionOutcome | None,
                executed: NotebookNode | None) -> list[CellScore]:
    """Points per graded cell: a test cell's points are split evenly over its checks.

    ``executed`` is ``outcome.notebook`` as :func:`~autograder.cells.read_executed` reads
    it (the caller reads it once; :func:`answer_errors` uses it too). Only records written
    while that test cell ran count: a value recorded from an answer cell (say, a forged
    line appended to the records file) is ignored.
    """
    ranges = cell_ranges(executed)
    by_cell_and_name: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in outcome.records if outcome else []:
        for gid, lines in ranges.items():
            if record.get("line") in lines:
                by_cell_and_name[(gid, record["name"])].append(record)
    errors = cell_errors(executed)
    cells: list[CellScore] = []
    for graded in assignment.graded_cells:
        if outcome is None:  # nothing could run: every test scores 0, manual cells stay open
            cells.append(CellScore(graded.grade_id, graded.kind, graded.points, None if graded.kind == "manual" else 0.0))
            continue
        if graded.kind == "manual":
            cells.append(CellScore(graded.grade_id, "manual", graded.points, None))
            continue
        expected = reference.records[graded.grade_id]
        checks = [compare(ref, by_cell_and_name.get((graded.grade_id, ref["name"]), []),
                          visible=ref["name"] in graded.visible_checks) for ref in expected]
        passed = sum(c.passed for c in checks)
        score = round(graded.points * passed / len(checks), 4)
        cells.append(CellScore(graded.grade_id, "auto", graded.points, score, checks, errors.get(graded.grade_id, "")))
    return cells
