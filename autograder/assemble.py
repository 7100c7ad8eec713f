"""Step 2: rebuild the notebook to execute from the instructor's source.

Every test cell, read-only cell and instruction comes from the source (hidden tests
included, but not the code that computes their references), in the source's order,
matched by nbgrader ``grade_id``; only the student's
answer cells, and code cells they added of their own, come from the submission. Editing,
deleting, reordering or stripping the metadata of a test cell therefore changes nothing.
An added cell runs where the student put it: after the source cell (answer, test or
read-only) it followed, so a cell written below a test runs after that test, as it did
for the student and for ``validate``.
"""

from __future__ import annotations

import copy

import nbformat

from autograder.cells import grade_id, is_answer
from autograder.source import Assignment, without_reference


def missing_answer_note(gid: str) -> str:
    """The note for an answer cell the submission lacks; grade and the gradebook look for it
    whole (an id can be part of another, ``mean`` of ``q_mean``)."""
    return f"answer cell {gid!r} is missing from the submission"


class WrongAssignmentError(ValueError):
    """The submission contains none of the assignment's answer cells."""


def _clean(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cell = copy.deepcopy(cell)
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None
    return cell


def _added(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A cell the student added, with its code only: its metadata could carry tags that
    papermill and nbclient act on ("parameters" would move where the grader's parameters are
    injected, "skip-execution" or "raises-exception" would change how cells run)."""
    return nbformat.v4.new_code_cell(cell.get("source", ""))


def assemble(assignment: Assignment, submission: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, list[str]]:
    """Return the notebook to execute and notes about what was taken or missing."""
    notes: list[str] = []
    source_ids = {grade_id(c) for c in assignment.notebook.cells if grade_id(c)}
    answers: dict[str, nbformat.NotebookNode] = {}
    extras: dict[str | None, list[nbformat.NotebookNode]] = {}
    anchor: str | None = None
    for cell in submission.cells:
        gid = grade_id(cell)
        if gid in assignment.answer_ids:
            if gid in answers:
                notes.append(f"answer cell {gid!r} appears more than once; the first one was graded")
                continue
            answers[gid] = cell
            anchor = gid
        elif gid in source_ids:
            anchor = gid  # a test or read-only cell: always taken from the source
        elif cell.cell_type == "code" and cell.get("source", "").strip():
            # A cell the student added (helpers, imports, experiments): kept after the cell it followed.
            extras.setdefault(anchor, []).append(cell)
    if assignment.answer_ids and not answers:
        raise WrongAssignmentError(
            f"the notebook contains none of the answer cells of {assignment.name!r} "
            f"({', '.join(assignment.answer_ids)}): is it the notebook of another assignment, "
            "or was it re-created without the cell metadata?"
        )
    cells = [_added(c) for c in extras.get(None, [])]  # added above every source cell
    for source_cell in assignment.notebook.cells:
        gid = grade_id(source_cell)
        cell = _clean(source_cell)
        if gid in assignment.answer_ids and is_answer(source_cell):
            student = answers.get(gid)
            if student is None or student.cell_type != source_cell.cell_type:
                notes.append(missing_answer_note(gid))
                # valid Python that says what happened, whatever the id holds
                cell.source = f"raise NotImplementedError({missing_answer_note(gid)!r})" if cell.cell_type == "code" else ""
            else:
                cell.source = student.get("source", "")
        elif cell.cell_type == "code":
            cell.source = without_reference(cell.source)
        cells.append(cell)
        if gid is not None:
            cells += [_added(c) for c in extras.get(gid, [])]
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index}"  # fresh ids: student cells may reuse the source's
    return nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(assignment.notebook.metadata)), notes
