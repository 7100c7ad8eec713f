"""Step 0: the instructor's source notebook of an assignment (solutions + hidden tests)."""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.cells import grade_id, is_answer, is_autograded_test, is_manual, part_heading, points
from autograder.config import Course

CHECK_CALL = re.compile(r"\bcheck\(")
NAMED_CHECK = re.compile(r"""\bcheck\(\s*(["'])([^"'\\]+)\1""")  # check("name", ...) with a literal name
HIDDEN_TESTS = re.compile(r"### BEGIN HIDDEN TESTS.*?(?:### END HIDDEN TESTS|\Z)", re.DOTALL)
# Code that computes the references of hidden checks (``autograder.checks.expect``): it runs in
# the solution's run only, and is cut from the notebook a submission is graded in.
REFERENCE_ONLY = re.compile(r"^[ \t]*### BEGIN REFERENCE\n.*?^[ \t]*### END REFERENCE[^\n]*(?:\n|\Z)", re.DOTALL | re.MULTILINE)


def without_reference(source: str) -> str:
    """A test cell's source as a submission is graded with it: no reference-only region."""
    return REFERENCE_ONLY.sub("", source)


class SourceError(ValueError):
    """The instructor's source notebook is not gradeable as it stands."""


@dataclass(frozen=True)
class GradedCell:
    """A cell that carries points: ``kind`` is ``"auto"`` (test) or ``"manual"`` (answer)."""

    grade_id: str
    kind: str
    points: float
    section: str = ""  # the heading above it in the source ("Part 1: the softmax (3 points)")
    visible_checks: frozenset[str] = frozenset()  # checks outside its hidden part: feedback may show values


@dataclass(frozen=True)
class Assignment:
    """An assignment as defined by ``solutions/<name>/<name>.ipynb``."""

    name: str
    path: Path
    notebook: nbformat.NotebookNode
    graded_cells: tuple[GradedCell, ...]
    answer_ids: tuple[str, ...]

    @property
    def max_score(self) -> float:
        return sum(c.points for c in self.graded_cells)

    @property
    def digest(self) -> str:
        """Changes whenever the source notebook changes (keys the reference cache)."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]


def list_assignments(course: Course) -> list[str]:
    if not course.solutions.is_dir():
        return []
    return sorted(p.name for p in course.solutions.iterdir() if (p / f"{p.name}.ipynb").is_file())


def _none_here(course: Course) -> str:
    return f"{course.solutions} holds no assignment: run from the course root or pass --course"


def require_assignments(course: Course) -> list[str]:
    """:func:`list_assignments`, where none is an error (usually: not the course root)."""
    known = list_assignments(course)
    if not known:
        raise SourceError(_none_here(course))
    return known


def assignment_path(course: Course, name: str) -> Path:
    """The source notebook of ``name``; a missing one is an error naming the known ones."""
    path = course.solutions / name / f"{name}.ipynb"
    if not path.is_file():
        known = ", ".join(list_assignments(course))
        raise SourceError(f"no assignment {name!r}: {path} does not exist "
                          f"({f'known: {known}' if known else _none_here(course)})")
    return path


def _check_reference_regions(path: Path, gid: str, source: str) -> None:
    """Reference-only regions must be whole, inside the hidden tests (the released notebook
    would carry them otherwise), and leave code that still parses when cut."""
    if "### BEGIN REFERENCE" in HIDDEN_TESTS.sub("", source):
        raise SourceError(f"{path}: test cell {gid!r} has a REFERENCE region outside its hidden tests")
    stripped = without_reference(source)
    if "### BEGIN REFERENCE" in stripped or "### END REFERENCE" in stripped:
        raise SourceError(f"{path}: test cell {gid!r} has an unmatched BEGIN/END REFERENCE marker (each on a line "
                          "of its own, with nothing after it)")
    if any("HIDDEN TESTS" in region.group(0) for region in REFERENCE_ONLY.finditer(source)):
        raise SourceError(f"{path}: test cell {gid!r} has a REFERENCE region that crosses its hidden tests' markers")
    if "expect(" in stripped:
        raise SourceError(f"{path}: test cell {gid!r} calls expect() outside a REFERENCE region: the reference "
                          "would then be computed in every student's kernel")
    if stripped != source:
        try:
            ast.parse(stripped)
        except SyntaxError as exc:
            raise SourceError(f"{path}: test cell {gid!r} does not parse without its REFERENCE regions "
                              f"(line {exc.lineno}: {exc.msg}); leave a statement in each block") from exc


def load_assignment(course: Course, name: str) -> Assignment:
    """Read and validate the source notebook of ``name``."""
    path = assignment_path(course, name)
    nb = nbformat.read(path, as_version=4)
    seen: set[str] = set()
    graded: list[GradedCell] = []
    answers: list[str] = []
    section = ""
    for index, cell in enumerate(nb.cells):
        if (heading := part_heading(cell)) is not None:
            section = heading
        gid = grade_id(cell)
        if gid is None:
            continue
        if gid in seen:
            raise SourceError(f"{path}: grade_id {gid!r} is used twice (cell {index})")
        seen.add(gid)
        if is_answer(cell):
            answers.append(gid)
        if is_autograded_test(cell):
            if not CHECK_CALL.search(cell.source):
                raise SourceError(
                    f"{path}: test cell {gid!r} records no check(...): the grader could not "
                    "verify it outside the student's kernel"
                )
            _check_reference_regions(path, gid, cell.source)
            visible = frozenset(m.group(2) for m in NAMED_CHECK.finditer(HIDDEN_TESTS.sub("", cell.source)))
            graded.append(GradedCell(gid, "auto", points(cell), section, visible))
        elif is_manual(cell):
            graded.append(GradedCell(gid, "manual", points(cell), section))
    if not any(c.kind == "auto" for c in graded):
        raise SourceError(f"{path}: no autograded test cells")
    return Assignment(name, path, nb, tuple(graded), tuple(answers))
