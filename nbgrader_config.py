"""nbgrader configuration for the course, for nbgrader's own commands (formgrader, ...).

The settings live in one place, ``autograder.release.nbgrader_config``, which the
course's autograder uses too.
"""

from pathlib import Path

from autograder.config import Course
from autograder.release import nbgrader_config

c = get_config()  # noqa: F821 (injected by traitlets when nbgrader loads this file)
c.merge(nbgrader_config(Course(Path(__file__).resolve().parent)))
c.Execute.timeout = 300
