"""The solution's own records: what every student's checks are compared with.

The instructor's source notebook (solutions and hidden tests) is executed once per
assignment version and parameter set, through the same sandboxed execution as the
submissions, and cached. Each record is attributed to the test cell that made it.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nbformat

from autograder.cells import grade_id, is_autograded_test, read_executed
from autograder.config import Course
from autograder.execute import ExecutionJob, ExecutionOutcome, execute
from autograder.source import Assignment, SourceError


@dataclass
class Reference:
    """Records of the solution's run, by test cell ``grade_id``."""

    assignment: str
    key: str
    records: dict[str, list[dict[str, Any]]]


def reference_key(assignment: Assignment, parameters: dict[str, Any]) -> str:
    blob = json.dumps({"digest": assignment.digest, "parameters": parameters}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def attribute(assignment: Assignment, outcome: ExecutionOutcome) -> dict[str, list[dict[str, Any]]]:
    """Give each record to the test cell during which it was written."""
    if outcome.status != "ok" or outcome.notebook is None:
        raise SourceError(f"the solution of {assignment.name!r} did not run cleanly ({outcome.status}): {outcome.message}")
    nb = read_executed(outcome.notebook)
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        gid = grade_id(cell)
        if errors and gid:
            raise SourceError(f"the solution fails its own cell {gid!r}: {errors[0].get('ename')}: {errors[0].get('evalue')}")
        made = [record for record in outcome.records if record.get("cell") == index]
        if is_autograded_test(cell):
            by_cell[gid] = made
        elif made and gid:
            raise SourceError(f"cell {gid!r} of {assignment.name!r} records checks but is not a test cell")
    names = [r["name"] for records in by_cell.values() for r in records]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise SourceError(f"{assignment.name!r} records these check names more than once: {duplicated}")
    empty = [g.grade_id for g in assignment.graded_cells if g.kind == "auto" and not by_cell.get(g.grade_id)]
    if empty:
        raise SourceError(f"test cells of {assignment.name!r} recorded no checks in the solution's run: {empty}")
    return by_cell


def reference_for(
    course: Course,
    assignment: Assignment,
    parameters: dict[str, Any],
    run: Callable[[ExecutionJob], ExecutionOutcome] = execute,
    on_run: Callable[[], None] | None = None,
) -> Reference:
    """The cached reference for these parameters, computing it when missing or stale
    (``on_run`` is called first then: the run takes as long as a submission's)."""
    key = reference_key(assignment, parameters)
    path = course.cache / assignment.name / f"{key}.pickle"
    if path.is_file():
        with open(path, "rb") as f:
            return pickle.load(f)  # written by the grader itself below, never by students
    if on_run is not None:
        on_run()
    outcome = run(ExecutionJob(nbformat.writes(assignment.notebook), parameters, course.limits, label="reference"))
    reference = Reference(assignment.name, key, attribute(assignment, outcome))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(reference, f)
    tmp.replace(path)
    return reference
