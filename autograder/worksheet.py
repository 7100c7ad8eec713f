"""Moodle's grading worksheet: who each participant number is, and grades going back to Moodle.

Moodle numbers the participants of each assignment separately, so the number in a download
(``Jane Doe_12345_assignsubmission_file_``) names a student in that assignment only. The
assignment's grading worksheet (Moodle: "Download grading worksheet", with the offline
grading worksheet turned on in the assignment's feedback settings) lists each participant
as ``Participant 12345`` with their full name and email address. With it, ``collect``
names each student by the local part of their email address (``jane.doe`` for
``Jane.Doe@uni.example``), the same id in every assignment, and ``export`` writes a copy of
the worksheet with the Grade column filled, ready for Moodle's "Upload grading worksheet",
and the feedback pages in a zip for "Upload multiple feedback files in a zip".

Columns are found by Moodle's English names; in another language the first column is taken
as the identifier, the second as the full name, the column of email addresses as the email,
and the first two adjacent columns of numbers after it (the second one number for all) as
the grade and the maximum grade. Identities hidden by anonymous submissions cannot be mapped
(the worksheet shows no email addresses until they are revealed), so they are refused.
Group submissions (one folder per group) are not supported.
"""

from __future__ import annotations

import csv
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a student id (a folder name under submitted/)
PARTICIPANT = re.compile(r"^\D*?(\d+)\s*$")  # "Participant 12345" (or the site's language)


class WorksheetError(ValueError):
    """A worksheet that cannot be used, with the reason."""


@dataclass(frozen=True)
class Participant:
    number: str  # Moodle's participant number in this assignment
    student: str  # the course's id of the student: their email address's local part
    name: str  # full name, as the worksheet writes it
    email: str


@dataclass
class Worksheet:
    path: Path
    header: list[str]
    rows: list[list[str]]  # as read, in order (the upload matches them by identifier)
    delimiter: str
    identifier: int  # the index of each column used
    name: int
    email: int
    grade: int | None  # None: not found (reading still works; writing grades does not)
    maximum: int | None
    participants: dict[str, Participant] = field(default_factory=dict)  # by participant number
    without_email: set[str] = field(default_factory=set)  # participant numbers listed without an address

    def number(self, row: list[str]) -> str:
        return participant_number(row[self.identifier])

    def student(self, number: str, download_name: str) -> str:
        """The course's id of participant ``number``, whose download folder says ``download_name``;
        raises WorksheetError when the worksheet does not know them as that person."""
        number = str(int(number))
        if number in self.without_email:
            raise WorksheetError(f"participant {number} has no email address in the worksheet {self.path.name}")
        found = self.participants.get(number)
        if found is None:
            raise WorksheetError(f"participant {number} is not in the worksheet {self.path.name} "
                                 "(is it the worksheet of another assignment?)")
        if not same_person(download_name, found.name):
            raise WorksheetError(f"participant {number} is {download_name!r} in the download but {found.name!r} "
                                 f"in the worksheet {self.path.name} (is it the worksheet of another assignment?)")
        return found.student


def participant_number(text: str) -> str:
    """``"12345"`` for ``"Participant 12345"`` (or ``"012345"``); ``""`` for anything else."""
    match = PARTICIPANT.match(text or "")
    return str(int(match.group(1))) if match else ""


def letters(name: str) -> str:
    """The letters and digits of ``name``, case-folded after Unicode NFKC: what names are compared by."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", name).casefold() if ch.isalnum())


def same_person(download_name: str, worksheet_name: str) -> bool:
    """Whether a download's folder name is the worksheet's full name.

    Moodle writes the name into the folder without some punctuation (and underscores), and a
    zip unpacked on macOS decomposes accents, so letters and digits are compared after
    Unicode normalization; anonymous downloads say "Participant", which proves nothing.
    """
    download, listed = letters(download_name), letters(worksheet_name)
    return download == "participant" or bool(download) and download == listed


def _student_id(email: str) -> str:
    """``jane.doe`` for ``Jane.Doe@uni.example``: characters an id cannot hold become ``-``."""
    local = email.strip().rsplit("@", 1)[0].casefold()
    return re.sub(r"[^a-z0-9._-]", "-", local).lstrip("._-")


def parse_number(text: str) -> float | None:
    """``text`` as a number, with a decimal point or comma (the LMS writes its site's), else None."""
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        return None


def grade_text(value: float, like: str) -> str:
    """``value`` with two decimals, written with the decimal separator of ``like`` (a number
    the LMS wrote in the same file: its site's separator)."""
    text = f"{value:.2f}"
    return text.replace(".", ",") if "," in like and "." not in like else text


def replaces_grade(old: str, new: str) -> bool:
    """Whether writing ``new`` over the cell ``old`` changes a grade already there."""
    return bool(old.strip()) and parse_number(old) != parse_number(new)


def read_csv(path: Path, what: str) -> tuple[str, list[tuple[int, list[str]]]]:
    """The delimiter of an LMS's CSV file (commas, or the semicolons spreadsheets save in some
    languages) and each row, blank ones included, with the line it ends on; UTF-8 with or
    without a BOM. ``what`` names the file in errors."""
    try:
        text = path.read_text(encoding="utf-8-sig")
        first = text.split("\n", 1)[0]
        delimiter = ";" if first.count(";") > first.count(",") else ","
        reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
        return delimiter, [(reader.line_num, row) for row in reader]
    except FileNotFoundError:
        raise WorksheetError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise WorksheetError(f"{path}: not a readable CSV {what} ({exc})") from None


def is_blank(row: list[str]) -> bool:
    return not any(cell.strip() for cell in row)


def _cell(row: list[str], index: int | None) -> str:
    return row[index] if index is not None and index < len(row) else ""


def _grade_columns(header: list[str], rows: list[list[str]], after: int) -> tuple[int | None, int | None]:
    """The Grade and Maximum Grade columns: by name, else the first adjacent pair of number
    columns after ``after`` whose second holds one number for everyone (an assignment has one
    maximum grade; phone numbers and ids differ)."""
    names = [h.strip().casefold() for h in header]
    if "grade" in names:
        grade = names.index("grade")
        return grade, names.index("maximum grade") if "maximum grade" in names else None
    for i in range(after + 1, len(header) - 1):
        grades, maxima = [_cell(r, i).strip() for r in rows], [_cell(r, i + 1).strip() for r in rows]
        if (all(g == "" or parse_number(g) is not None for g in grades)
                and all(parse_number(m) is not None for m in maxima) and len(set(maxima)) == 1):
            return i, i + 1
    return None, None


def read_worksheet(path: Path) -> Worksheet:
    """Read a Moodle grading worksheet (CSV as Moodle writes it, UTF-8 with or without a BOM;
    also with semicolons, as spreadsheets save CSV in some languages)."""
    path = Path(path)
    delimiter, all_lines = read_csv(path, "worksheet")
    header = all_lines[0][1] if all_lines else []
    lines = [(line, row) for line, row in all_lines[1:] if not is_blank(row)]
    if len(header) < 2 or not lines:
        raise WorksheetError(f"{path}: not a Moodle grading worksheet (no participants in it)")
    names = [h.strip().casefold() for h in header]
    repeated = sorted({h for h in names if names.count(h) > 1})
    if repeated:
        raise WorksheetError(f"{path}: the column {repeated[0]!r} appears twice")
    rows = [row for _, row in lines]

    def by_name(english: str, fallback: int | None) -> int | None:
        return names.index(english) if english in names else fallback

    identifier, name = by_name("identifier", 0), by_name("full name", 1)
    email = by_name("email address", None)
    if email is None:
        email = next((i for i in range(len(header)) if any("@" in _cell(r, i) for r in rows)
                      and all("@" in _cell(r, i) or not _cell(r, i).strip() for r in rows)), None)
    anonymous = (f"{path}: no email addresses in it (columns: {', '.join(header)}); Moodle hides them while "
                 "submissions are anonymous: reveal identities and download it again")
    if email is None:
        raise WorksheetError(anonymous)
    grade, maximum = _grade_columns(header, rows, email)
    sheet = Worksheet(path, header, rows, delimiter, identifier, name, email, grade, maximum)
    by_student: dict[str, Participant] = {}
    for line, row in lines:
        number, address = participant_number(_cell(row, identifier)), _cell(row, email).strip()
        if not number:
            raise WorksheetError(f"{path}, line {line}: {_cell(row, identifier)!r} in column {header[identifier]!r} "
                                 "is not a participant such as 'Participant 12345'")
        if number in sheet.participants or number in sheet.without_email:
            raise WorksheetError(f"{path}, line {line}: participant {number} is listed twice")
        if not address:
            sheet.without_email.add(number)  # no address, no id: their submission is reported, not guessed
            continue
        student = _student_id(address)
        if not STUDENT_ID.match(student):
            raise WorksheetError(f"{path}, line {line}: no student id can be made from the email address {address!r}")
        if student in by_student:
            raise WorksheetError(f"{path}: {by_student[student].email} and {address} would both be student "
                                 f"{student!r}; change one of the two addresses in a copy of the worksheet")
        sheet.participants[number] = by_student[student] = Participant(number, student, _cell(row, name).strip(),
                                                                       address)
    if not sheet.participants:
        raise WorksheetError(anonymous)
    return sheet


def add_notes(notes: list[str], *labelled: tuple[str, list[str]]) -> None:
    """Append ``"label: a, b"`` for each label that has items."""
    notes.extend(f"{label}: {', '.join(items)}" for label, items in labelled if items)


@dataclass(frozen=True)
class Grade:
    """One student's grade as the export has it, for an LMS's grade file (Moodle's or Canvas's)."""

    student: str
    number: str  # the participant number collect kept ("": not from a Moodle download)
    total: float | None  # None: held back
    held_back: str = ""  # why it is not to be uploaded yet


def _matched(worksheet: Worksheet, grades: list[Grade], notes: list[str]) -> dict[str, Grade]:
    """The grades whose participant number is this worksheet's and names this student, by number.

    A student named by the worksheet must be the worksheet's participant of that number; one
    named by the number itself cannot be checked. Of several students with one number (a
    planted ``lms_id.txt``, or a class collected both with and without the worksheet) the
    worksheet's own person gets it, else none; all are named. Refuses a worksheet where no
    number matches: numbers differ between assignments, so it is another assignment's.
    """
    listed = {worksheet.number(row) for row in worksheet.rows}
    claims: dict[str, list[Grade]] = {}
    for g in grades:
        if g.number.isdigit():
            claims.setdefault(participant_number(g.number), []).append(g)
    shared, wrong, missing, matched = [], [], [], {}
    for number, claimants in sorted(claims.items(), key=lambda item: int(item[0])):
        if number not in listed:
            missing.extend(f"{g.student} (participant {number})" for g in claimants)
            continue
        known = worksheet.participants.get(number)
        listed_as = known.student if known else "listed without an email address"
        named_by_sheet = [g for g in claimants if known and g.student == known.student]
        unverifiable = [g for g in claimants if g.student in (number, g.number)]  # named by the number itself
        wrong.extend(f"{g.student} (participant {number} is {listed_as} there)" for g in claimants
                     if g not in named_by_sheet and g not in unverifiable)
        candidates = named_by_sheet or unverifiable  # the worksheet's own person first
        if len(candidates) == 1:
            matched[number] = candidates[0]
        if len(named_by_sheet + unverifiable) > 1:  # collected both with and without the worksheet, say
            kept = f"kept {candidates[0].student}" if len(candidates) == 1 else "left blank"
            shared.append(f"participant {number} ({', '.join(g.student for g in named_by_sheet + unverifiable)}: "
                          f"{kept})")
    if claims and not matched:
        raise WorksheetError(f"{worksheet.path.name} is not the worksheet of these submissions: none of their "
                             f"{len(claims)} participant numbers is a participant of it with that name (is it the "
                             "worksheet of another assignment?); nothing written")
    add_notes(notes, ("one participant number, several students", shared),
              ("another student's participant number in this worksheet; left blank", wrong),
              ("not in the worksheet", missing),
              ("an LMS id that is not a participant number", [g.student for g in grades
                                                               if g.number and not g.number.isdigit()]),
              ("no participant number (not collected from a Moodle download)", [g.student for g in grades
                                                                                 if not g.number]))
    return matched


def write_grades(worksheet: Worksheet, grades: list[Grade], max_score: float,
                 out: Path) -> tuple[list[Grade], list[str]]:
    """Write ``worksheet`` to ``out`` with the Grade of each graded participant filled in.

    Returns the grades filled in and what the instructor should know. Points are scaled to
    the row's Maximum Grade (Moodle's upload skips grades above it, so those are named),
    written with the worksheet's decimal separator. Refuses a worksheet without a grade
    column, or of another assignment (:func:`_matched`), writing nothing.
    """
    if worksheet.grade is None:
        raise WorksheetError(f"{worksheet.path}: no Grade column (columns: {', '.join(worksheet.header)})")
    notes: list[str] = []
    matched = _matched(worksheet, grades, notes)
    rows, filled, scales, above, unreadable, replaced = [], [], set(), [], [], []
    for row in worksheet.rows:
        row = row + [""] * (len(worksheet.header) - len(row))
        grade = matched.get(worksheet.number(row))
        if grade is not None and grade.total is not None:
            maximum = _cell(row, worksheet.maximum).strip()
            moodle_max = parse_number(maximum) if worksheet.maximum is not None else float(max_score)
            if moodle_max is None or moodle_max <= 0 or max_score <= 0:
                unreadable.append(f"{grade.student} ({maximum!r})")
                rows.append(row)
                continue
            value = grade.total * moodle_max / max_score
            if moodle_max != max_score:
                scales.add(f"{moodle_max:g}")
            if value > moodle_max + 1e-9:
                above.append(grade.student)
            text = grade_text(value, maximum)
            if replaces_grade(row[worksheet.grade], text):
                replaced.append(f"{grade.student} (was {row[worksheet.grade].strip()})")
            row[worksheet.grade] = text
            filled.append(grade)
        rows.append(row)
    held = [f"{g.student} ({g.held_back})" for g in matched.values() if g.total is None]
    add_notes(notes, ("left blank for your review", held),
              ("left blank, Moodle's maximum grade unreadable", unreadable),
              ("above Moodle's maximum grade, which its upload skips", above),
              ("replaced a grade already in the worksheet", replaced))
    if scales:
        notes.insert(0, f"grades scaled to Moodle's maximum grade {', '.join(sorted(scales))} "
                        f"(the assignment's maximum: {max_score:g})")
    if worksheet.maximum is None:
        notes.insert(0, f"no Maximum Grade column: grades written as points out of {max_score:g}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8-sig") as f:  # as Moodle writes it; its upload reads either
        writer = csv.writer(f, delimiter=worksheet.delimiter)
        writer.writerow(worksheet.header)
        writer.writerows(rows)
    return filled, notes


def write_feedback_zip(pages: dict[str, Path], out: Path) -> None:
    """A zip of feedback pages by participant number, as Moodle's feedback-files upload reads it.

    Moodle splits each entry's name at its first four underscores: any name, the participant
    number, the plugin (``assignfeedback_file``), then the file's own name.
    """
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for number, page in sorted(pages.items(), key=lambda item: int(item[0])):
            archive.write(page, f"participant_{int(number)}_assignfeedback_file_{page.name}")
