"""``release``: student versions of assignments, generated with nbgrader.

nbgrader's ``generate_assignment`` replaces solutions with stubs, removes hidden tests and
mark schemes, clears outputs, locks cells and records the assignment's cells in the
gradebook (so that grades and nbgrader's formgrader know every graded cell).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import nbformat
from traitlets.config import Config

from autograder.config import Course, ensure_tools_on_path
from autograder.source import SourceError, assignment_path, load_assignment

FORBIDDEN_IN_RELEASE = ("### BEGIN SOLUTION", "### END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN MARK SCHEME",
                        "BEGIN REFERENCE", "expect(")


class ReleaseError(SourceError):
    """nbgrader could not generate the student version: the source notebook needs fixing."""


def nbgrader_config(course: Course) -> Config:
    """The nbgrader configuration of ``course`` (the same as nbgrader_config.py says)."""
    config = Config()
    config.CourseDirectory.root = str(course.root)
    config.CourseDirectory.course_id = "dl-course"
    config.CourseDirectory.source_directory = "solutions"
    config.CourseDirectory.release_directory = "release"
    config.CourseDirectory.submitted_directory = "submitted"
    config.CourseDirectory.autograded_directory = "autograded"
    config.CourseDirectory.feedback_directory = "feedback"
    config.CourseDirectory.db_url = course.db_url
    config.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    config.ClearSolutions.text_stub = "YOUR ANSWER HERE"
    config.Exchange.root = str(course.root / ".exchange")  # unused here; keeps nbgrader from warning
    return config


def _reason(result: dict) -> str:
    """The exception that stopped nbgrader, from the tracebacks in its log and error text
    (its own last line only says to read the traceback above)."""
    text = f"{result.get('log') or ''}\n{result.get('error') or ''}"
    raised = [line.strip() for line in text.splitlines()
              if re.match(r"\s*[\w.]*(Error|Exception): ", line) and "NbGraderException" not in line]
    return raised[-1] if raised else "see nbgrader's log (nbgrader generate_assignment)"


def release(course: Course, name: str) -> Path:
    """Write ``release/<name>/<name>.ipynb`` and return its path."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    ensure_tools_on_path()
    assignment = load_assignment(course, name)  # validates the source first
    config = nbgrader_config(course)
    coursedir = CourseDirectory(config=config)
    api = NbGraderAPI(coursedir=coursedir, config=config)
    api.log.setLevel(logging.ERROR)
    result = api.generate_assignment(name, force=True, create=True)
    if not result.get("success"):
        raise ReleaseError(f"nbgrader could not release {name}: {_reason(result)} (in {assignment_path(course, name)})")
    path = course.release / name / f"{name}.ipynb"
    text = path.read_text(encoding="utf-8")
    leaked = [marker for marker in FORBIDDEN_IN_RELEASE if marker in text]
    if leaked:
        raise ReleaseError(f"{path} still contains {leaked}: refusing to publish it")
    notebook = nbformat.reads(text, as_version=4)
    # validate() lists the tests and answer cells a student deleted by comparing with these.
    notebook.metadata["autograder"] = {
        "assignment": name,
        "tests": [c.grade_id for c in assignment.graded_cells if c.kind == "auto"],
        "answers": list(assignment.answer_ids),
    }
    nbformat.validate(notebook)
    nbformat.write(notebook, path)
    return path
