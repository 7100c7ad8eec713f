import shutil
from pathlib import Path

import pytest

from autograder.config import Course, Limits

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


@pytest.fixture
def course(tmp_path: Path) -> Course:
    return make_course(tmp_path / "course")
