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
from autograder.records import compare
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
            by_cell[gid] = _with_references(assignment, gid, made)
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


def is_expectation(record: dict[str, Any]) -> bool:
    """Whether ``record`` was made by :func:`~autograder.checks.expect`, not by ``check``."""
    return bool(record.get("criteria", {}).get("expect"))


def _with_references(assignment: Assignment, gid: str, made: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A test cell's check records as students' are compared with them: the solution's
    values, or for a check with an :func:`~autograder.checks.expect` record, that
    independent reference, which the solution's value must meet. The solution must also
    meet its own thresholds (those the grader measures are left to the assignment's tests:
    they train and evaluate a model)."""
    expects = [r for r in made if is_expectation(r)]
    expected = {r["name"]: r for r in expects}
    checks = [r for r in made if not is_expectation(r)]
    unused = sorted(set(expected) - {r["name"] for r in checks})
    if unused:
        raise SourceError(f"cell {gid!r} of {assignment.name!r} expects values for checks it does not record: {unused}")
    if len(expected) < len(expects):
        raise SourceError(f"cell {gid!r} of {assignment.name!r} expects more than one value for a check")
    thresholds = sorted(r["name"] for r in checks if r["name"] in expected and (
        r.get("criteria", {}).get("at_least") is not None or r.get("criteria", {}).get("at_most") is not None))
    if thresholds:
        raise SourceError(f"cell {gid!r} of {assignment.name!r} expects values for threshold checks, which compare "
                          f"with no value: {thresholds}")
    references = []
    for own in checks:
        criteria = own.get("criteria", {})
        reference = {**own, "value": expected[own["name"]]["value"]} if own["name"] in expected else own
        threshold = criteria.get("at_least") is not None or criteria.get("at_most") is not None
        if reference is not own or (threshold and criteria.get("measure") is None):
            verdict = compare(reference, [own], visible=True)
            if not verdict.passed:
                raise SourceError(f"the solution of {assignment.name!r} fails its own check {own['name']!r} "
                                  f"(cell {gid!r}): {verdict.message}")
        references.append(reference)
    return references


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
