"""Step 5: record results in nbgrader's gradebook (SQLite by default, any SQLAlchemy URL).

Only the coordinating process writes here; workers return results as data. That avoids
nbgrader's "database is locked" problem with parallel autograding (nbgrader issue 174).
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone

from nbgrader.api import Gradebook, MissingEntry

from autograder.assemble import missing_answer_note
from autograder.config import Course, ensure_tools_on_path
from autograder.results import SubmissionResult
from autograder.source import Assignment


class GradebookWriter:
    """An open gradebook for one grading run (opening one costs about a second)."""

    def __init__(self, course: Course) -> None:
        ensure_tools_on_path()
        self.gradebook = Gradebook(course.db_url, "dl-course")

    def __enter__(self) -> GradebookWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.gradebook.close()

    def has_assignment(self, assignment: Assignment) -> bool:
        try:
            notebook = self.gradebook.find_notebook(assignment.name, assignment.name)
        except MissingEntry:
            return False
        known = {c.name for c in notebook.grade_cells}
        return known == {g.grade_id for g in assignment.graded_cells}

    def record(self, assignment: Assignment, result: SubmissionResult) -> None:
        with warnings.catch_warnings():  # nbgrader's own SQLAlchemy usage warns on autoflush
            warnings.simplefilter("ignore")
            self._record(assignment, result)

    def _record(self, assignment: Assignment, result: SubmissionResult) -> None:
        gb = self.gradebook
        gb.update_or_create_student(result.student)
        # nbgrader keeps naive UTC times; its formgrader and its own export then show them.
        when = {"timestamp": datetime.fromisoformat(result.submitted_at).astimezone(timezone.utc).replace(tzinfo=None)
                } if result.submitted_at else {}
        gb.update_or_create_submission(assignment.name, result.student, **when)
        for cell in result.cells:
            grade = gb.find_grade(cell.grade_id, assignment.name, assignment.name, result.student)
            grade.auto_score = cell.score
            # An instructor's manual score always wins; unscored cells wait for one.
            grade.needs_manual_grade = grade.manual_score is None and cell.score is None
        for gid in assignment.answer_ids:
            try:
                comment = gb.find_comment(gid, assignment.name, assignment.name, result.student)
            except MissingEntry:
                continue
            comment.auto_comment = "No response." if missing_answer_note(gid) in result.notes else None
        gb.db.commit()

    def has_submission(self, assignment: str, student: str) -> bool:
        try:
            self.gradebook.find_submission(assignment, student)
        except MissingEntry:
            return False
        return True

    def standing(self, assignment: str, student: str) -> tuple[float, bool]:
        """``(score, written answers still to grade)`` of one submission as the gradebook holds
        it: an instructor's manual scores count, and graded answers no longer wait."""
        notebook = self.gradebook.find_submission_notebook(assignment, assignment, student)
        return notebook.score, notebook.needs_manual_grade

    def scores(self, assignment: str) -> dict[str, float]:
        """Total score per student as the gradebook holds it (manual scores included)."""
        return {s.student.id: s.score for s in self.gradebook.find_assignment(assignment).submissions}


def students_with_grades(gb: Gradebook, db_url: str, assignment: str, graded: set[str]) -> set[str]:
    """Students with a submission of ``assignment`` in the gradebook ``gb``.

    Raises ValueError when none of the ``graded`` students (those with a result under
    ``autograded/``) is there: that is another gradebook (a mistyped ``--db``, a new
    database), and reading it would export zeros or drop manual grades.
    """
    try:
        found = {s.student.id for s in gb.find_assignment(assignment).submissions}
    except MissingEntry:
        found = set()
    if graded and not graded & found:
        raise ValueError(f"the gradebook {db_url} holds no grades of {assignment!r} for the {len(graded)} "
                         "submissions graded under autograded/: is it the one they were graded into "
                         "(--db, AUTOGRADER_DB_URL)? Run grade again to fill it.")
    return found
