"""Canvas's gradebook export: grades going back to Canvas by its user id.

Canvas names the files of a submissions download ``doejane_1234_5678_softmax.ipynb``: the
student's sortable name ("Doe, Jane") in lower case without punctuation, then their Canvas
user id, ``1234`` (``collect`` keeps it in ``lms_id.txt``). Its gradebook export (Grades,
Export) has a row per student with that id in the ``ID`` column and a column per
assignment named ``Softmax regression (8812)``. ``export --canvas-gradebook`` writes that
file back with the assignment's column filled in, keeping only the columns Canvas matches
students by (Student, ID, SIS User ID, SIS Login ID, Integration ID, Section), so that an
import (Grades, Import) changes nothing else. A grade goes to a row only when both the id
and the name agree, so a wrong ``lms_id.txt`` cannot put it on another student's account.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from autograder.worksheet import (
    Grade,
    WorksheetError,
    add_notes,
    grade_text,
    is_blank,
    letters,
    parse_number,
    read_csv,
    replaces_grade,
)

IDENTITY_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section")
ASSIGNMENT_COLUMN = re.compile(r"^(?P<name>.+) \((?P<id>\d+)\)$")  # "Softmax regression (8812)"
POINTS_POSSIBLE = "Points Possible"


@dataclass
class Gradebook:
    path: Path
    header: list[str]
    rows: list[list[str]]  # the points row first, where the export has one
    delimiter: str = ","

    def column(self, name: str) -> int:
        return self.header.index(name)

    def points_row(self) -> list[str] | None:
        return next((r for r in self.rows if r and r[0].strip() == POINTS_POSSIBLE), None)


def same_student(student: str, canvas_name: str) -> bool:
    """Whether ``student`` (a download's file-name prefix) is the prefix Canvas makes of the
    row's sortable name: letters and digits, or only their ASCII ones (accents dropped)."""
    return bool(student) and (letters(student) == letters(canvas_name)
                              or letters(student) == re.sub(r"[^a-z0-9]", "", canvas_name.lower()))


def read_gradebook(path: Path) -> Gradebook:
    """Read a Canvas gradebook export (CSV, UTF-8 with or without a BOM; commas or semicolons)."""
    path = Path(path)
    delimiter, all_lines = read_csv(path, "gradebook")
    lines = [row for _, row in all_lines if not is_blank(row)]
    header = [h.strip() for h in lines[0]] if lines else []
    if "Student" not in header or "ID" not in header:
        raise WorksheetError(f"{path}: not a Canvas gradebook export (no Student and ID columns)")
    if "Section" not in header:
        raise WorksheetError(f"{path}: no Section column, which Canvas's import needs: export the gradebook again")
    return Gradebook(path, header, lines[1:], delimiter)


def assignment_column(gradebook: Gradebook, assignment: str, chosen: str | None = None) -> str:
    """The gradebook column of ``assignment``: ``chosen``, else the one assignment column whose
    name is the assignment's, else the one that has it as a word ("Softmax regression (8812)")."""
    columns = [h for h in gradebook.header if ASSIGNMENT_COLUMN.match(h)]
    if chosen is not None:
        if chosen not in gradebook.header:
            raise WorksheetError(f"{gradebook.path.name} has no column {chosen!r} (assignment columns: "
                                 f"{', '.join(columns) or 'none'})")
        return chosen
    names = {h: ASSIGNMENT_COLUMN.match(h)["name"] for h in columns}
    word = re.compile(rf"(?<![^\W_]){re.escape(assignment)}(?![^\W_])", re.IGNORECASE)
    hits = [h for h in columns if letters(names[h]) == letters(assignment)] or [
        h for h in columns if word.search(names[h])]
    if len(hits) != 1:
        found = f"several do ({', '.join(hits)})" if hits else f"none does (assignment columns: {', '.join(columns)})"
        raise WorksheetError(f"which column of {gradebook.path.name} is {assignment!r}? {found}: name it with "
                             "--canvas-column")
    return hits[0]


def _key(canvas_id: str) -> str:
    return canvas_id.strip().lstrip("0") or "0" if canvas_id.strip().isdigit() else ""


def _resolve(gradebook: Gradebook, grades: list[Grade], notes: list[str]) -> dict[int, Grade]:
    """The grade of each gradebook row (by index): the student whose Canvas user id and name
    (as Canvas wrote it into the file names) are the row's; everyone else is named."""
    ids, names = gradebook.column("ID"), gradebook.column("Student")
    holders: dict[str, list[Grade]] = {}
    for g in grades:
        if _key(g.number):
            holders.setdefault(_key(g.number), []).append(g)
    rows_of: dict[str, list[int]] = {}
    for i, row in enumerate(gradebook.rows):
        if key := _key(row[ids]) if ids < len(row) else "":
            rows_of.setdefault(key, []).append(i)
    resolved: dict[int, Grade] = {}
    wrong, missing, shared = [], [], []
    for key, claimants in holders.items():
        if key not in rows_of:
            missing.extend(f"{g.student} ({key})" for g in claimants)
            continue
        for i in rows_of[key]:  # a student listed in two sections has two rows
            canvas_name = gradebook.rows[i][names] if names < len(gradebook.rows[i]) else ""
            named = [g for g in claimants if same_student(g.student, canvas_name)]
            if len(named) == 1:
                resolved[i] = named[0]
            elif named:
                shared.append(f"{key} ({', '.join(g.student for g in named)})")
            wrong.extend(f"{g.student} (id {key} is {canvas_name!r})" for g in claimants
                         if g not in named and f"{g.student} (id {key} is {canvas_name!r})" not in wrong)
    unnumbered = [g.student for g in grades if not _key(g.number)]
    add_notes(notes, ("several students with one Canvas id and name; left blank", shared),
              ("another student's Canvas id, or a name Canvas does not give it; left blank", wrong),
              ("not in the gradebook", missing),
              ("no Canvas user id (not collected from a Canvas download)", unnumbered))
    return resolved


def write_gradebook(gradebook: Gradebook, column: str, grades: list[Grade], max_score: float,
                    out: Path) -> tuple[list[Grade], list[str]]:
    """Write the identity columns and ``column`` of ``gradebook`` to ``out``, with the grade of
    each student graded in full filled in by Canvas user id, scaled to the column's points
    possible. Returns the grades filled in and notes for the instructor."""
    index = gradebook.column(column)
    points_row = gradebook.points_row()
    points = points_row[index].strip() if points_row and index < len(points_row) else ""
    possible = parse_number(points)
    if possible is None or possible <= 0 or max_score <= 0:
        raise WorksheetError(f"{gradebook.path.name}: no points possible for {column!r} (its 'Points Possible' row)")
    notes: list[str] = [f"the assignment's column: {column}"]
    resolved = _resolve(gradebook, grades, notes)
    keep = [i for i, h in enumerate(gradebook.header) if h in IDENTITY_COLUMNS] + [index]
    filled, above, replaced, rows = [], [], [], []
    for i, row in enumerate(gradebook.rows):
        row = row + [""] * (len(gradebook.header) - len(row))
        grade = resolved.get(i)
        if grade is not None and grade.total is not None:
            value = grade.total * possible / max_score
            text = grade_text(value, points)
            if value > possible + 1e-9:
                above.append(grade.student)
            if replaces_grade(row[index], text):
                replaced.append(f"{grade.student} (was {row[index].strip()})")
            row[index] = text
            if grade not in filled:  # one student, two sections: two rows
                filled.append(grade)
        rows.append([row[k] for k in keep])
    held = sorted({f"{g.student} ({g.held_back})" for g in resolved.values() if g.total is None})
    add_notes(notes, ("left blank for your review", held),
              ("above the points possible, which Canvas accepts as extra credit", above),
              ("replaced a grade already in the gradebook", replaced))
    if possible != max_score:
        notes.insert(1, f"grades scaled to Canvas's {possible:g} points possible "
                        f"(the assignment's maximum: {max_score:g})")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=gradebook.delimiter)
        writer.writerow([gradebook.header[k] for k in keep])
        writer.writerows(rows)
    return filled, notes
