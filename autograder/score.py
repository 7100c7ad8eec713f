"""Step 4: score each graded cell from the comparison of records."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from nbformat import NotebookNode

from autograder.cells import grade_id, is_answer, is_given
from autograder.execute import ExecutionOutcome
from autograder.records import compare, exception_name
from autograder.reference import Reference, is_expectation
from autograder.results import CellScore
from autograder.source import HIDDEN_TESTS, Assignment

WITHHELD = ("(its message is not shown: it was raised after hidden tests had run, so your code could have "
            "copied them into it; `validate` shows it)")


def first_hidden_cell(executed: NotebookNode | None) -> int:
    """Position of the first executed cell holding hidden tests (past the end when none).

    From that cell on, the student's code has seen hidden tests (their source is in the
    kernel's history and in the frames that call the student's functions), so any text it
    produced may quote them: feedback shows error messages only from before it.
    """
    for index, cell in enumerate(executed.cells if executed else []):
        if cell.cell_type == "code" and HIDDEN_TESTS.search(cell.source):
            return index
    return len(executed.cells) if executed else 0


def shown_message(cell: NotebookNode, index: int, hidden_from: int, message: str) -> str | None:
    """``message`` when feedback may show it (see :func:`first_hidden_cell`), else None.

    After hidden tests have run, a message the test itself states (an ``assert``'s text,
    found verbatim in the visible part of the cell) is still shown.
    """
    if not message or index < hidden_from or message in HIDDEN_TESTS.sub("", cell.source):
        return message
    return None


def _errors(executed: NotebookNode) -> Iterator[tuple[NotebookNode, str, str]]:
    """``(cell, type, message)`` of each error a cell with a grade id raised (no traceback:
    it may show hidden tests; a message only where :func:`shown_message` allows)."""
    hidden_from = first_hidden_cell(executed)
    for index, cell in enumerate(executed.cells):
        for out in cell.get("outputs", []) if grade_id(cell) else []:
            if out.get("output_type") == "error":
                name = str(out.get("ename", "Error"))[:100]
                message = shown_message(cell, index, hidden_from, str(out.get("evalue", ""))[:500])
                if index >= hidden_from:  # a class's name is the student's text too
                    name = exception_name(name)
                yield cell, name, WITHHELD if message is None else message


TIMED_OUT = "the cell ran longer than the time limit per cell and was stopped; later cells still ran"


def _error_text(name: str, message: str) -> str:
    if name == "KeyboardInterrupt":  # how nbclient stops a cell at its timeout
        return f"KeyboardInterrupt ({TIMED_OUT})"
    return f"{name} {message}" if message == WITHHELD else f"{name}: {message}".rstrip(": ")


def timed_out_cells(executed: NotebookNode | None) -> list[str]:
    """Grade ids of the cells stopped at the time limit per cell."""
    return [grade_id(cell) for cell, name, _ in (_errors(executed) if executed else []) if name == "KeyboardInterrupt"]


def cell_errors(executed: NotebookNode | None) -> dict[str, str]:
    """``grade_id -> "Type: message"`` of the cells that raised."""
    return {grade_id(cell): _error_text(name, value) for cell, name, value in _errors(executed)} if executed else {}


def answer_errors(executed: NotebookNode | None) -> list[str]:
    """What the student's answer cells, and the given cells that use them, raised, one
    sentence each, for their feedback.

    The error of such a cell otherwise shows only as a ``NameError`` in the tests that use
    what it failed to define.
    """
    found = []
    for cell, name, value in _errors(executed) if executed else []:
        if cell.cell_type != "code" or not (is_answer(cell) or is_given(cell)):
            continue
        if is_given(cell):  # given code (loading data, a training run) that uses the answers
            found.append(f"the given cell {grade_id(cell)!r} raised {_error_text(name, value)}"
                         + (" (an answer it uses is not written yet)" if name == "NotImplementedError" else ""))
        elif name == "NotImplementedError":
            found.append(f"answer cell {grade_id(cell)!r} is not written yet (it raises NotImplementedError)")
        else:
            found.append(f"answer cell {grade_id(cell)!r} raised {_error_text(name, value)}")
    return found


def cells_with_ids(executed: NotebookNode | None) -> dict[int, str]:
    """``position in the executed notebook -> grade_id`` of its code cells with an id; the
    runner tags each record with the position of the cell that was running when it was made."""
    return {index: gid for index, cell in enumerate(executed.cells if executed else [])
            if cell.cell_type == "code" and (gid := grade_id(cell))}


def score_cells(assignment: Assignment, reference: Reference, outcome: ExecutionOutcome | None,
                executed: NotebookNode | None) -> list[CellScore]:
    """Points per graded cell: a test cell's points are split evenly over its checks.

    ``executed`` is ``outcome.notebook`` as :func:`~autograder.cells.read_executed` reads
    it (the caller reads it once; :func:`answer_errors` uses it too). Only records written
    while that test cell ran count: a value recorded from an answer cell (say, a forged
    line appended to the records file) is ignored.
    """
    cells_by_index = cells_with_ids(executed)
    by_cell_and_name: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in outcome.records if outcome else []:
        if is_expectation(record):  # references come from the solution's run only
            continue
        if (gid := cells_by_index.get(record.get("cell"))) is not None:
            by_cell_and_name[(gid, record["name"])].append(record)
    errors = cell_errors(executed)
    position = {gid: index for index, gid in cells_by_index.items()}
    hidden_from = first_hidden_cell(executed)
    cells: list[CellScore] = []
    for graded in assignment.graded_cells:
        if outcome is None:  # nothing could run: every test scores 0, manual cells stay open
            cells.append(CellScore(graded.grade_id, graded.kind, graded.points, None if graded.kind == "manual" else 0.0))
            continue
        if graded.kind == "manual":
            cells.append(CellScore(graded.grade_id, "manual", graded.points, None))
            continue
        expected = reference.records[graded.grade_id]
        messages = position.get(graded.grade_id, hidden_from) < hidden_from
        checks = [compare(ref, by_cell_and_name.get((graded.grade_id, ref["name"]), []),
                          visible=ref["name"] in graded.visible_checks, messages=messages) for ref in expected]
        passed = sum(c.passed for c in checks)
        score = round(graded.points * passed / len(checks), 4)
        cells.append(CellScore(graded.grade_id, "auto", graded.points, score, checks, errors.get(graded.grade_id, "")))
    return cells
