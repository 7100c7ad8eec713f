"""``collect``: import submissions into ``submitted/<student>/<assignment>/``.

Accepts the layouts instructors really get: nbgrader's ``<student>/<assignment>/*.ipynb``,
a flat folder of ``<student>_<assignment>.ipynb`` files, and an LMS download (a zip or
its unpacked folder) whose file names start with the student and end with the assignment,
as in ``jdoe_1234_5678_softmax.ipynb`` or ``jdoe_softmax-1.ipynb`` (a re-submission).
Names that match no assignment, or several, are reported and not guessed.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from autograder.config import Course
from autograder.source import list_assignments

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class CollectReport:
    imported: list[tuple[str, str, Path]] = field(default_factory=list)  # student, assignment, from
    problems: list[str] = field(default_factory=list)


def _match(stem: str, assignments: list[str]) -> tuple[str | None, str | None, str]:
    """(student, assignment, problem) parsed from an LMS-style file name."""
    stem = re.sub(r"-\d+$", "", stem)  # "…_softmax-1": the LMS numbers re-submissions
    hits = [a for a in assignments if stem == a or stem.endswith(f"_{a}") or stem.endswith(f"-{a}")]
    hits = [a for a in hits if not any(b != a and b.endswith(a) and b in hits for b in hits)]  # longest wins
    if len(hits) != 1:
        what = "no known assignment" if not hits else f"several assignments ({', '.join(hits)})"
        return None, None, f"names {what}"
    assignment = hits[0]
    student = stem[: -len(assignment)].rstrip("_-").split("_")[0]
    if not student or not STUDENT_ID.match(student):
        return None, assignment, "does not start with a student id"
    return student, assignment, ""


def collect(course: Course, source: Path, only: str | None = None) -> CollectReport:
    """Copy every recognisable submission under ``source`` (folder or zip) into the course."""
    assignments = [only] if only else list_assignments(course)
    report = CollectReport()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(source)
        if root.is_file() and zipfile.is_zipfile(root):
            with zipfile.ZipFile(root) as archive:
                for member in archive.infolist():
                    target = (Path(tmp) / member.filename).resolve()
                    if not str(target).startswith(str(Path(tmp).resolve())):  # zip-slip
                        report.problems.append(f"{member.filename}: unsafe path in the archive, skipped")
                        continue
                    archive.extract(member, tmp)
            root = Path(tmp)
        elif not root.is_dir():
            report.problems.append(f"{source}: neither a folder nor a zip file")
            return report
        for path in sorted(root.rglob("*.ipynb")):
            if ".ipynb_checkpoints" in path.parts or path.name.startswith("._"):
                continue
            rel = path.relative_to(root)
            if len(rel.parts) >= 3 and rel.parts[-2] in assignments:  # nbgrader layout
                student, assignment, problem = rel.parts[-3], rel.parts[-2], ""
                if not STUDENT_ID.match(student):
                    problem = "has a folder name that is not a student id"
            else:
                student, assignment, problem = _match(path.stem, assignments)
            if problem:
                report.problems.append(f"{rel}: {problem}; not imported")
                continue
            target_dir = course.submitted / student / assignment
            target_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target_dir / f"{assignment}.ipynb")
            stamp = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
            (target_dir / "timestamp.txt").write_text(stamp.strftime("%Y-%m-%d %H:%M:%S.%f %Z"))
            report.imported.append((student, assignment, rel))
    duplicates = {(s, a) for s, a, _ in report.imported if sum(1 for t in report.imported if t[:2] == (s, a)) > 1}
    for student, assignment in sorted(duplicates):
        files = [str(p) for s, a, p in report.imported if (s, a) == (student, assignment)]
        report.problems.append(f"{student}/{assignment}: several files ({', '.join(files)}); the last one was kept")
    return report
