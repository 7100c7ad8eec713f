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

Column names are Moodle's English ones; in another language the first column is taken as
the identifier, the second as the full name, and the column whose entries are email
addresses as the email. Identities hidden by anonymous submissions cannot be mapped (the
worksheet shows no email addresses until they are revealed), so they are refused.
"""

from __future__ import annotations

import csv
import re
import zipfile
from dataclasses import dataclass
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
    fieldnames: list[str]
    rows: list[dict[str, str]]  # as read, in order (the upload matches them by identifier)
    identifier: str  # the name of each column used
    email: str
    name: str
    participants: dict[str, Participant]  # by participant number
    without_email: set[str]  # participant numbers listed without an email address

    def student(self, number: str, download_name: str) -> str:
        """The course's id of participant ``number``, whose download folder says ``download_name``;
        raises WorksheetError when the worksheet does not know them as that person."""
        number = str(int(number))
        found = self.participants.get(number)
        if number in self.without_email:
            raise WorksheetError(f"participant {number} has no email address in the worksheet {self.path.name}")
        if found is None:
            raise WorksheetError(f"participant {number} is not in the worksheet {self.path.name} "
                                 "(is it the worksheet of another assignment?)")
        if not same_person(download_name, found.name):
            raise WorksheetError(f"participant {number} is {download_name!r} in the download but {found.name!r} "
                                 f"in the worksheet {self.path.name} (is it the worksheet of another assignment?)")
        return found.student


def _letters(name: str) -> str:
    return "".join(ch for ch in name.casefold() if ch.isalnum())


def same_person(download_name: str, worksheet_name: str) -> bool:
    """Whether a download's folder name is the worksheet's full name.

    Moodle writes the name into the folder without some punctuation (and underscores), and
    after the group's name for group submissions, so letters and digits are compared, at the
    end; anonymous downloads say "Participant", which proves nothing either way.
    """
    download, listed = _letters(download_name), _letters(worksheet_name)
    return download in ("", "participant") or bool(listed) and download.endswith(listed)


def _student_id(email: str) -> str:
    """``jane.doe`` for ``Jane.Doe@uni.example``: characters an id cannot hold become ``-``."""
    local = email.strip().rsplit("@", 1)[0].casefold()
    return re.sub(r"[^a-z0-9._-]", "-", local).lstrip("._-")


def _column(fieldnames: list[str], english: str, fallback: str | None) -> str | None:
    by_name = {f.strip().casefold(): f for f in fieldnames}
    return by_name.get(english.casefold(), fallback)


def read_worksheet(path: Path) -> Worksheet:
    """Read a Moodle grading worksheet (CSV, as Moodle writes it: UTF-8, with or without a BOM)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fieldnames = list(reader.fieldnames or [])
            rows = list(reader)
    except FileNotFoundError:
        raise WorksheetError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise WorksheetError(f"{path}: not a readable CSV worksheet ({exc})") from None
    if len(fieldnames) < 2 or not rows:
        raise WorksheetError(f"{path}: not a Moodle grading worksheet (no participants in it)")
    identifier = _column(fieldnames, "Identifier", fieldnames[0])
    name = _column(fieldnames, "Full name", fieldnames[1])
    email = _column(fieldnames, "Email address", None) or next(
        (f for f in fieldnames if any("@" in (r.get(f) or "") for r in rows)
         and all("@" in v or not v.strip() for r in rows if (v := r.get(f) or ""))), None)
    anonymous = (f"{path}: no email addresses in it (columns: {', '.join(fieldnames)}); Moodle hides them while "
                 "submissions are anonymous: reveal identities and download it again")
    if email is None:
        raise WorksheetError(anonymous)
    participants: dict[str, Participant] = {}
    without_email: set[str] = set()
    by_student: dict[str, Participant] = {}
    for line, row in enumerate(rows, start=2):
        match = PARTICIPANT.match(row.get(identifier) or "")
        if not match:
            raise WorksheetError(f"{path}, line {line}: {row.get(identifier)!r} in column {identifier!r} "
                                 "is not a participant such as 'Participant 12345'")
        number, address = str(int(match.group(1))), (row.get(email) or "").strip()
        if number in participants or number in without_email:
            raise WorksheetError(f"{path}, line {line}: participant {number} is listed twice")
        if not address:
            without_email.add(number)  # no address, no id: their submission is reported, not guessed
            continue
        student = _student_id(address)
        if not STUDENT_ID.match(student):
            raise WorksheetError(f"{path}, line {line}: no student id can be made from the email address {address!r}")
        if student in by_student:
            raise WorksheetError(f"{path}: {by_student[student].email} and {address} would both be student "
                                 f"{student!r}; change one of the two addresses in a copy of the worksheet")
        participants[number] = by_student[student] = Participant(number, student, (row.get(name) or "").strip(),
                                                                 address)
    if not participants:
        raise WorksheetError(anonymous)
    return Worksheet(path, fieldnames, rows, identifier, email, name, participants, without_email)


@dataclass(frozen=True)
class Grade:
    """One student's grade as the export has it, for the worksheet."""

    student: str
    number: str  # the participant number collect kept ("": not from a Moodle download)
    total: float | None  # None: held back
    held_back: str = ""  # why it is not to be uploaded yet


def _number(row: dict[str, str], identifier: str) -> str | None:
    match = PARTICIPANT.match(row.get(identifier) or "")
    return str(int(match.group(1))) if match else None


def _float(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", "."))  # Moodle writes the site's decimal separator
    except ValueError:
        return None


def write_grades(worksheet: Worksheet, grades: list[Grade], max_score: float, out: Path) -> tuple[list[Grade], list[str]]:
    """Write ``worksheet`` to ``out`` with the Grade of each graded participant filled in.

    Returns the grades filled in and what the instructor should know: grades held
    back, students the worksheet does not list, a scaling to Moodle's maximum grade. Refuses
    (writing nothing) a worksheet whose participants are other students than the ones
    collected with a worksheet: participant numbers differ between assignments, so it is the
    worksheet of another assignment.
    """
    grade_column = _column(worksheet.fieldnames, "Grade", None)
    if grade_column is None:
        raise WorksheetError(f"{worksheet.path}: no Grade column (columns: {', '.join(worksheet.fieldnames)})")
    wrong = [f"{g.student} (participant {g.number} is {p.student if p else 'someone without an email address'} "
             "there)" for g in grades if g.number and g.student != g.number
             and (g.number in worksheet.without_email
                  or ((p := worksheet.participants.get(g.number)) is not None and p.student != g.student))]
    if wrong:
        raise WorksheetError(f"{worksheet.path.name} is not the worksheet these students were collected with: "
                             f"{'; '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''}; nothing written")
    maximum_column = _column(worksheet.fieldnames, "Maximum Grade", None)
    by_number = {str(int(g.number)): g for g in grades if g.number.isdigit()}
    rows, filled, scales = [], [], set()
    for row in worksheet.rows:
        row = dict(row)
        grade = by_number.pop(_number(row, worksheet.identifier) or "", None)
        if grade is not None and grade.total is not None:
            moodle_max = _float(row.get(maximum_column) or "") if maximum_column else None
            scale = moodle_max / max_score if moodle_max and max_score and moodle_max != max_score else 1.0
            if scale != 1.0:
                scales.add(f"{moodle_max:g}")
            row[grade_column] = f"{grade.total * scale:.2f}"
            filled.append(grade)
        rows.append(row)
    notes = []
    if scales:
        notes.append(f"grades scaled to Moodle's maximum grade {', '.join(sorted(scales))} "
                     f"(the assignment's maximum: {max_score:g})")
    held = [f"{g.student} ({g.held_back})" for g in grades if g.number and g.total is None and g.number not in by_number]
    if held:
        notes.append(f"left blank for your review: {', '.join(held)}")
    if by_number:
        notes.append("not in the worksheet: " + ", ".join(f"{g.student} (participant {n})" for n, g in by_number.items()))
    unnumbered = [g.student for g in grades if not g.number]
    if unnumbered:
        notes.append(f"no participant number (not collected from a Moodle download): {', '.join(unnumbered)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8-sig") as f:  # as Moodle writes it; its upload reads either
        writer = csv.DictWriter(f, worksheet.fieldnames, extrasaction="ignore")
        writer.writeheader()
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
