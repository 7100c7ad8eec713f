"""Canvas's gradebook export: grades going back to Canvas by its user id.

Canvas names the files of a submissions download ``doejane_1234_5678_softmax.ipynb``, where
``1234`` is the student's Canvas user id (``collect`` keeps it in ``lms_id.txt``), and its
gradebook export (Grades, Export) has a row per student with that id in the ``ID`` column and
a column per assignment named ``Softmax regression (8812)``. ``export --canvas-gradebook``
writes that file back with the assignment's column filled in, keeping only the columns
Canvas needs to match students (Student, ID, SIS User ID, SIS Login ID, Section), so that an
import (Grades, Import) changes nothing else.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from autograder.worksheet import Grade, WorksheetError

IDENTITY_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section")
ASSIGNMENT_COLUMN = re.compile(r"^(?P<name>.+) \((?P<id>\d+)\)$")  # "Softmax regression (8812)"
POINTS_POSSIBLE = "Points Possible"


@dataclass
class Gradebook:
    path: Path
    header: list[str]
    rows: list[list[str]]  # the points row first, where the export has one

    def column(self, name: str) -> int:
        return self.header.index(name)

    def points_row(self) -> list[str] | None:
        return next((r for r in self.rows if r and r[0].strip() == POINTS_POSSIBLE), None)


def _letters(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def read_gradebook(path: Path) -> Gradebook:
    """Read a Canvas gradebook export (CSV, UTF-8 with or without a BOM)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except FileNotFoundError:
        raise WorksheetError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise WorksheetError(f"{path}: not a readable CSV gradebook ({exc})") from None
    if not lines or "ID" not in lines[0] or "Student" not in lines[0]:
        raise WorksheetError(f"{path}: not a Canvas gradebook export (no Student and ID columns)")
    return Gradebook(path, lines[0], lines[1:])


def assignment_column(gradebook: Gradebook, assignment: str, chosen: str | None = None) -> str:
    """The gradebook column of ``assignment``: ``chosen``, else the one assignment column whose
    name contains the assignment's (letters and digits compared)."""
    columns = [h for h in gradebook.header if ASSIGNMENT_COLUMN.match(h)]
    if chosen is not None:
        if chosen not in gradebook.header:
            raise WorksheetError(f"{gradebook.path.name} has no column {chosen!r} (assignment columns: "
                                 f"{', '.join(columns) or 'none'})")
        return chosen
    hits = [h for h in columns if _letters(assignment) in _letters(ASSIGNMENT_COLUMN.match(h)["name"])]
    if len(hits) != 1:
        found = f"several do ({', '.join(hits)})" if hits else f"none does (assignment columns: {', '.join(columns)})"
        raise WorksheetError(f"which column of {gradebook.path.name} is {assignment!r}? {found}: name it with "
                             "--canvas-column")
    return hits[0]


def _key(canvas_id: str) -> str:
    return canvas_id.strip().lstrip("0") or "0" if canvas_id.strip().isdigit() else ""


def _resolve(gradebook: Gradebook, grades: list[Grade], notes: list[str]) -> dict[int, Grade]:
    """The grade of each gradebook row (by index), matched by Canvas user id.

    An id several students hold (a planted ``lms_id.txt``, say) goes to the one whose id
    Canvas's file names derived from this row's name (``"Doe, Jane"``: ``doejane``), else to
    none; either way it is named.
    """
    ids, names = gradebook.column("ID"), gradebook.column("Student")
    holders: dict[str, list[Grade]] = {}
    for g in grades:
        if _key(g.number):
            holders.setdefault(_key(g.number), []).append(g)
    resolved, shared, listed = {}, [], set()
    for i, row in enumerate(gradebook.rows):
        key = _key(row[ids]) if ids < len(row) else ""
        claimants = holders.get(key, []) if key else []
        listed.add(key)
        if len(claimants) > 1:
            named = [g for g in claimants if names < len(row) and _letters(g.student) == _letters(row[names])]
            kept = f"kept {named[0].student}" if len(named) == 1 else "left blank"
            shared.append(f"{row[ids].strip()} ({', '.join(g.student for g in claimants)}: {kept})")
            claimants = named
        if len(claimants) == 1:
            resolved[i] = claimants[0]
    missing = [f"{g.student} ({key})" for key, gs in holders.items() if key not in listed for g in gs]
    unnumbered = [g.student for g in grades if not _key(g.number)]
    for label, items in (("one Canvas id, several students", shared),
                         ("not in the gradebook", missing),
                         ("no Canvas user id (not collected from a Canvas download)", unnumbered)):
        if items:
            notes.append(f"{label}: {', '.join(items)}")
    return resolved


def write_gradebook(gradebook: Gradebook, column: str, grades: list[Grade], max_score: float,
                    out: Path) -> tuple[list[Grade], list[str]]:
    """Write the identity columns and ``column`` of ``gradebook`` to ``out``, with the grade of
    each student graded in full filled in by Canvas user id, scaled to the column's points
    possible. Returns the grades filled in and notes for the instructor."""
    index = gradebook.column(column)
    points_row = gradebook.points_row()
    possible = _float(points_row[index]) if points_row and index < len(points_row) else None
    if possible is None or possible <= 0 or max_score <= 0:
        raise WorksheetError(f"{gradebook.path.name}: no points possible for {column!r} (its 'Points Possible' row)")
    notes: list[str] = []
    resolved = _resolve(gradebook, grades, notes)
    keep = [i for i, h in enumerate(gradebook.header) if h in IDENTITY_COLUMNS] + [index]
    filled, above, replaced, rows = [], [], [], []
    for i, row in enumerate(gradebook.rows):
        row = row + [""] * (len(gradebook.header) - len(row))
        grade = resolved.get(i)
        if grade is not None and grade.total is not None:
            value = grade.total * possible / max_score
            text = f"{value:.2f}"
            if value > possible + 1e-9:
                above.append(grade.student)
            if row[index].strip() and _float(row[index]) != _float(text):
                replaced.append(f"{grade.student} (was {row[index].strip()})")
            row[index] = text
            filled.append(grade)
        rows.append([row[k] for k in keep])
    held = [f"{g.student} ({g.held_back})" for g in resolved.values() if g.total is None]
    for label, items in (("left blank for your review", held),
                         ("above the points possible, which Canvas accepts as extra credit", above),
                         ("replaced a grade already in the gradebook", replaced)):
        if items:
            notes.append(f"{label}: {', '.join(items)}")
    if possible != max_score:
        notes.insert(0, f"grades scaled to Canvas's {possible:g} points possible "
                        f"(the assignment's maximum: {max_score:g})")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([gradebook.header[k] for k in keep])
        writer.writerows(rows)
    return filled, notes


def _float(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None
