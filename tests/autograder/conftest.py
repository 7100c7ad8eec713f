import shutil
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from autograder.config import Course, Limits
from autograder.gradebook import GradebookWriter
from autograder.records import CheckResult
from autograder.release import release
from autograder.results import CellScore, SubmissionResult
from autograder.source import load_assignment

FIXTURES = Path(__file__).parent / "fixtures"
SUBMISSIONS = FIXTURES / "submissions"


def make_course(root: Path, cell_timeout: float = 20.0) -> Course:
    shutil.copytree(FIXTURES / "course", root, dirs_exist_ok=True)
    return Course(root, limits=Limits(cell_timeout=cell_timeout, notebook_timeout=180))


def submit(course: Course, student: str, fixture: str, assignment: str = "tiny") -> Path:
    target = course.submitted / student / assignment / f"{assignment}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SUBMISSIONS / f"{fixture}.ipynb", target)
    return target


def graded(course, student: str, score: float, in_gradebook: bool = True) -> SubmissionResult:
    """A result for tiny (test_double scores ``score`` of 2, test_mean 3 of 3, the written
    answer awaits grading), recorded in the gradebook unless told otherwise."""
    result = SubmissionResult(student, "tiny", "graded", cells=[
        CellScore("test_double", "auto", 2.0, score, [CheckResult("double/3", score > 0)]),
        CellScore("test_mean", "auto", 3.0, 3.0, [CheckResult("mean", True)]),
        CellScore("q_mean", "manual", 1.0, None),
    ])
    result.save(course.autograded / student / "tiny" / "result.json")
    if in_gradebook:
        release(course, "tiny")
        with GradebookWriter(course) as gb:
            gb.record(load_assignment(course, "tiny"), result)
    return result


def collected(course, student: str, number: str) -> None:
    """What collect leaves for a submission from an LMS download: the notebook and the LMS's id."""
    folder = course.submitted / student / "tiny"
    folder.mkdir(parents=True)
    (folder / "tiny.ipynb").write_text("{}")
    (folder / "lms_id.txt").write_text(number)


def grade_written_answer(course, student: str, score: float) -> None:
    """An instructor's grade for tiny's written answer, as formgrader saves it."""
    with Gradebook(course.db_url, "dl-course") as gb:
        grade = gb.find_grade("q_mean", "tiny", "tiny", student)
        grade.manual_score, grade.needs_manual_grade = score, False
        gb.db.commit()


@pytest.fixture
def course(tmp_path: Path) -> Course:
    return make_course(tmp_path / "course")
