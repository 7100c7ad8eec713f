"""``collect``: import submissions into ``submitted/<student>/<assignment>/``.

Accepts the layouts instructors really get, as a folder or a zip:

- nbgrader's ``<student>/<assignment>/*.ipynb`` (its ``timestamp.txt`` is kept, and the
  ``lms_id.txt`` and ``lms_late.txt`` of a tree that ``collect`` made);
- a flat folder of ``<student>_<assignment>.ipynb``;
- Canvas: ``doejane_1234_5678_softmax.ipynb``, ``doejane_LATE_1234_5678_softmax-1.ipynb``
  (student: the name before the first ``_``; ``_LATE_``: Canvas marked it late; the first
  number is Canvas's user id, kept in ``lms_id.txt`` for the export);
- Moodle: ``Jane Doe_12345_assignsubmission_file_/softmax.ipynb`` (or the same name
  without the ``/``). Moodle numbers participants per assignment, so the student id is
  the local part of the email address that the assignment's grading worksheet lists for
  participant ``12345`` when it is given (``--worksheet``; the folder's name must be the
  worksheet's), else the number itself; the number is kept in ``lms_id.txt``, which the
  worksheet matches when grades go back. Students name their files freely, so pass
  ``--assignment`` when the file names do not name it.

A ``-N`` (LMS) or `` (N)`` (browser) suffix numbers a resubmission: of several files for
one student and assignment the highest number is kept, then the latest submission time.
That time is the zip entry's date (read as local time, as ``unzip`` does), nbgrader's
``timestamp.txt``, or else the file's modification time; it goes to ``timestamp.txt``
(``export --due`` reports lateness from it). An LMS's own late mark (Canvas) is kept in
``lms_late.txt``.
Collecting again replaces a notebook collected before only with a newer submission.
Every other file is listed with the reason it was not imported (system files such as
``__MACOSX/`` and ``.DS_Store`` are skipped silently); names are never guessed.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from autograder.config import Course
from autograder.source import assignment_path, require_assignments
from autograder.worksheet import STUDENT_ID, Worksheet, WorksheetError

SUFFIXES = r"((?:-\d+| \(\d+\))*)"  # resubmission numbers: LMS "-1", browser " (1)"
MOODLE = re.compile(r"^(?P<name>[^_]*)_(?P<id>\d+)_assignsubmission_[a-z]+_(?P<rest>.*)$")
JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
JUNK_FOLDERS = {"__MACOSX", ".ipynb_checkpoints"}
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"  # nbgrader's
NO_ASSIGNMENT = "names no known assignment"
CANVAS = re.compile(r"^(?P<prefix>[A-Za-z0-9][A-Za-z0-9.-]*_(?:LATE_)?\d+_\d+)_")  # name_[LATE_]userid_fileid_


@dataclass(frozen=True)
class Submission:
    """One input notebook attributed to a student and an assignment."""

    student: str
    assignment: str
    origin: Path  # relative to the folder or zip collected
    submitted: datetime  # UTC
    attempt: tuple[int, int] = (0, 0)  # resubmission numbers in the name: "-N", then " (N)"
    late: bool = False  # the LMS marked it late (Canvas's "_LATE_")
    lms_id: str = ""  # the LMS's own id of the student (Canvas user id, Moodle participant)


@dataclass
class CollectReport:
    submissions: list[Submission] = field(default_factory=list)  # imported
    problems: list[str] = field(default_factory=list)  # input files not imported, and why
    set_aside: list[str] = field(default_factory=list)  # older submissions, with the newer one kept
    ignored: list[Path] = field(default_factory=list)  # system files, skipped silently

    @property
    def imported(self) -> list[tuple[str, str, Path]]:
        """``(student, assignment, origin)`` of each imported notebook."""
        return [(s.student, s.assignment, s.origin) for s in self.submissions]


def _attempt(suffixes: str) -> tuple[int, int]:
    """The resubmission numbers in a name's suffixes: ``"-2 (1)"`` is ``(2, 1)``."""
    dashes = [int(n) for n in re.findall(r"-(\d+)", suffixes)]
    parens = [int(n) for n in re.findall(r"\((\d+)\)", suffixes)]
    return max(dashes, default=0), max(parens, default=0)


def _trailing_attempt(stem: str) -> tuple[int, int]:
    match = re.search(f"{SUFFIXES}$", stem)
    return _attempt(match.group(1) if match else "")


def _named(stem: str, known: list[str]) -> tuple[str, str, tuple[int, int]] | str:
    """``(prefix, assignment, attempt)`` of a name ending with one assignment, or a problem."""
    hits: dict[str, tuple[str, str, tuple[int, int]]] = {}
    for a in known:
        m = re.search(rf"(?:^|[_-]){re.escape(a)}{SUFFIXES}$", stem, re.IGNORECASE)
        if m:
            hits[a] = (stem[: m.start()], a, _attempt(m.group(1)))
    longest = max(map(len, hits), default=0)  # "jdoe_rnn_lm" is rnn_lm, not lm
    best = sorted(a for a in hits if len(a) == longest)
    if len(best) != 1:
        return f"names several assignments ({', '.join(best)})" if best else NO_ASSIGNMENT
    return hits[best[0]]


def _identify(rel: Path, known: list[str], only: str | None,
              worksheet: Worksheet | None) -> tuple[str, str, tuple[int, int], bool, str] | str:
    """``(student, assignment, attempt, late, lms_id)`` of an input notebook, or why it cannot be imported."""
    # The outermost name Moodle wrote: a student's own folder or file inside it may imitate one.
    moodle = next((m for part in rel.parts if (m := MOODLE.match(part))), None)
    if moodle:
        stem = Path(moodle["rest"]).stem if moodle.string == rel.name else rel.stem  # flat, or in a folder
        named = _named(stem, known)
        if isinstance(named, str):
            if named != NO_ASSIGNMENT:
                return named
            if not only:
                return f"{named} (a Moodle download holds one assignment: pass --assignment)"
            named = ("", only, _trailing_attempt(stem))  # students name their files freely
        student = moodle["id"]
        if worksheet is not None:
            try:
                student = worksheet.student(moodle["id"], moodle["name"])
            except WorksheetError as exc:
                return str(exc)
        return student, named[1], named[2], False, moodle["id"]
    if len(rel.parts) >= 3 and rel.parts[-2] in known:  # nbgrader layout
        student, assignment = rel.parts[-3], rel.parts[-2]
        if not STUDENT_ID.match(student):
            return "has a folder name that is not a student id"
        return student, assignment, _trailing_attempt(rel.stem), False, ""
    named = _named(rel.stem, known)
    canvas = CANVAS.match(rel.stem)
    if named == NO_ASSIGNMENT and only and canvas:  # Canvas keeps the student's own file name after its ids
        named = (canvas["prefix"], only, _trailing_attempt(rel.stem))
    if isinstance(named, str):
        return named
    prefix, assignment, attempt = named
    parts = prefix.split("_")
    if not parts[0] or not STUDENT_ID.match(parts[0]):
        return "does not start with a student id"
    lms_id = next((p for p in parts[1:] if p.isdigit()), "")  # Canvas: name_[LATE_]userid_fileid
    return parts[0], assignment, attempt, "LATE" in parts[1:], lms_id


def _unzip(archive_path: Path, into: Path, report: CollectReport) -> None:
    """Extract every file, dated as its zip entry (which ``ZipFile.extract`` forgets)."""
    base = into.resolve()
    with zipfile.ZipFile(archive_path) as archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            target = (base / member.filename).resolve()
            if not target.is_relative_to(base) or target == base:  # zip-slip
                report.problems.append(f"{member.filename}: unsafe path in the archive; not imported")
                continue
            if target.exists():  # extracting it would overwrite the first entry
                report.problems.append(f"{member.filename}: a second entry of this name in the archive; not imported")
                continue
            if member.flag_bits & 0x1:  # zipfile's own error would print the entry's repr
                report.problems.append(f"{member.filename}: encrypted (password-protected) in the archive; "
                                       "not imported")
                continue
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, zlib.error, EOFError) as exc:
                target.unlink(missing_ok=True)
                report.problems.append(f"{member.filename}: unreadable in the archive ({exc}); not imported")
                continue
            stamp = time.mktime((*member.date_time, 0, 0, -1))  # zip dates are local time
            os.utime(target, (stamp, stamp))


def submission_time(folder: Path) -> datetime | None:
    """The time in nbgrader's ``timestamp.txt`` of a submission folder (UTC), if it has a readable one."""
    try:
        text = (folder / "timestamp.txt").read_text().strip()
        stamp = datetime.fromisoformat(re.sub(r" UTC$", "+00:00", text))
        return stamp.astimezone(timezone.utc) if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    except (OSError, ValueError, OverflowError):  # a student can write it (nbgrader's exchange): never a crash
        return None


def _is_junk(rel: Path) -> bool:
    return bool(JUNK_FOLDERS.intersection(rel.parts[:-1])) or rel.name in JUNK_NAMES or rel.name.startswith("._")


# Beside a notebook in nbgrader's layout (lms_id.txt and lms_late.txt: ours).
NBGRADER_FILES = ("timestamp.txt", "lms_id.txt", "lms_late.txt")


def _is_nbgrader_file(rel: Path, known: list[str]) -> bool:
    return rel.name in NBGRADER_FILES and len(rel.parts) >= 3 and rel.parts[-2] in known


def collected_lms_id(folder: Path) -> str:
    """The LMS id that an earlier ``collect`` kept beside a notebook (``lms_id.txt``), if any."""
    try:
        text = (folder / "lms_id.txt").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return text if STUDENT_ID.match(text) else ""


def lms_marked_late(folder: Path) -> bool:
    """Whether the LMS marked the submission collected into ``folder`` late (``lms_late.txt``)."""
    return (folder / "lms_late.txt").is_file()


def _choose(group: list[tuple[Submission, Path]]) -> tuple[tuple[Submission, Path] | None, str]:
    """The newest of one student's files for one assignment (None: a tie), and what to say."""
    group = sorted(group, key=lambda c: (c[0].attempt, c[0].submitted, str(c[0].origin)), reverse=True)
    newest, others = group[0], group[1:]
    names = ", ".join(str(s.origin) for s, _ in reversed(others))  # oldest first
    key = (newest[0].attempt, newest[0].submitted)
    tied = [c for c in others if (c[0].attempt, c[0].submitted) == key]
    if any(c[1].read_bytes() != newest[1].read_bytes() for c in tied):
        every = ", ".join(sorted(str(s.origin) for s, _ in group))
        return None, (f"{every}: submissions of {newest[0].student}/{newest[0].assignment} with the same "
                      "resubmission number and time, so none is known to be the newest; remove the others "
                      "and collect again; not imported")
    if len(tied) == len(others):
        why = "the others are identical copies"
    elif all(s.attempt < newest[0].attempt for s, _ in others):
        why = "highest resubmission number"
    elif all(s.attempt == newest[0].attempt for s, _ in others):
        why = "latest submission time"
    else:
        why = "highest resubmission number, then latest time"
    return newest, (f"{names}: set aside for {newest[0].student}/{newest[0].assignment}, "
                    f"which keeps {newest[0].origin} ({why})")


def _keep_collected(submission: Submission, path: Path, target: Path) -> tuple[str, bool] | None:
    """Why the notebook collected before for this student and assignment stays (and whether
    that is a problem), or None when ``path`` may replace it.

    A later ``collect`` replaces it only with a submission at least as new, so collecting an
    old download after a newer one loses nothing; the same time with other contents is a
    tie, as within one collection.
    """
    if not target.exists() or path.resolve() == target.resolve():
        return None
    collected = submission_time(target.parent) or datetime.fromtimestamp(target.stat().st_mtime, tz=timezone.utc)
    if submission.submitted > collected or (submission.submitted == collected
                                           and target.read_bytes() == path.read_bytes()):
        return None
    who, when = f"{submission.student}/{submission.assignment}", collected.strftime("%Y-%m-%d %H:%M:%S UTC")
    if submission.submitted == collected:
        return (f"{submission.origin}: submitted at the same time ({when}) as the different notebook collected "
                f"before for {who}, so neither is known to be the newer; kept the one collected before, "
                "not imported"), True
    return f"{submission.origin}: set aside for {who}, which keeps the newer notebook collected before ({when})", False


def collect(course: Course, source: Path, only: str | None = None, worksheet: Worksheet | None = None) -> CollectReport:
    """Copy the newest submission of each student and assignment under ``source`` (folder or zip).

    ``worksheet``: the Moodle grading worksheet of assignment ``only``, which names Moodle's
    participants by their email addresses (:mod:`autograder.worksheet`).
    """
    known = require_assignments(course)
    if worksheet is not None and not only:
        raise ValueError("a Moodle worksheet belongs to one assignment: name it with --assignment")
    if only:
        assignment_path(course, only)  # an unknown name is one error, not one per file
    source = Path(source)
    if not source.exists():
        raise ValueError(f"{source}: no such file or folder")
    report = CollectReport()
    with tempfile.TemporaryDirectory() as tmp:
        root = source
        if source.is_file():
            if not zipfile.is_zipfile(source):
                raise ValueError(f"{source}: neither a folder nor a zip file")
            _unzip(source, Path(tmp), report)
            root = Path(tmp)
        groups: dict[tuple[str, str], list[tuple[Submission, Path]]] = {}
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root)
            if _is_junk(rel):
                report.ignored.append(rel)
                continue
            if _is_nbgrader_file(rel, known):
                continue  # read with the notebook beside it
            if path.suffix.lower() != ".ipynb":
                report.problems.append(f"{rel}: not a notebook ({path.suffix or 'no extension'}); not imported")
                continue
            found = _identify(rel, known, only, worksheet)
            if isinstance(found, str):
                report.problems.append(f"{rel}: {found}; not imported")
                continue
            student, assignment, attempt, late, lms_id = found
            if only and assignment != only:
                report.problems.append(f"{rel}: is {assignment}, not {only} (--assignment); not imported")
                continue
            nbgrader = len(rel.parts) >= 3 and rel.parts[-2] == assignment and rel.parts[-3] == student
            stamp = (submission_time(path.parent) if nbgrader else None) or datetime.fromtimestamp(
                path.stat().st_mtime, tz=timezone.utc)
            if nbgrader:  # a tree collect made (submitted/ itself, or a copy of it) keeps the LMS's marks
                lms_id = lms_id or collected_lms_id(path.parent)
                late = late or lms_marked_late(path.parent)
            submission = Submission(student, assignment, rel, stamp, attempt, late, lms_id)
            groups.setdefault((student, assignment), []).append((submission, path))
        for (student, assignment), group in sorted(groups.items()):
            chosen, message = _choose(group) if len(group) > 1 else (group[0], "")
            if chosen is None:
                report.problems.append(message)
                continue
            if message:  # older attempts: expected, not a problem
                report.set_aside.append(message)
            submission, path = chosen
            target_dir = course.submitted / student / assignment
            target = target_dir / f"{assignment}.ipynb"
            kept = _keep_collected(submission, path, target)
            if kept:
                message, problem = kept
                (report.problems if problem else report.set_aside).append(message)
                continue
            target_dir.mkdir(parents=True, exist_ok=True)
            if path.resolve() != target.resolve():  # collecting course.submitted itself changes nothing
                shutil.copyfile(path, target)
            seconds = submission.submitted.timestamp()
            os.utime(target, (seconds, seconds))
            (target_dir / "timestamp.txt").write_text(submission.submitted.strftime(TIMESTAMP_FORMAT))
            lms_file = target_dir / "lms_id.txt"
            if submission.lms_id:
                lms_file.write_text(submission.lms_id)
            else:
                lms_file.unlink(missing_ok=True)  # not an LMS download this time: no stale id
            late_file = target_dir / "lms_late.txt"
            if submission.late:
                late_file.write_text("marked late by the LMS\n")
            else:
                late_file.unlink(missing_ok=True)
            report.submissions.append(submission)
    return report
