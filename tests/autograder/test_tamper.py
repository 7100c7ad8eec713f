"""The grader reads the student's own code for reaching into the grading (autograder.tamper)."""

from pathlib import Path

import nbformat
import pytest

from autograder.cells import grade_id, is_answer
from autograder.tamper import findings_in

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "solutions").glob("*/*.ipynb")), ids=lambda p: p.stem)
def test_the_course_solutions_are_not_flagged(path):
    """Every answer of every assignment, written the way the course teaches: no finding."""
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code" and is_answer(c)]
    assert cells
    assert {grade_id(c): findings_in(c.source) for c in cells if findings_in(c.source)} == {}


FORGERY = '''\
"""Docstrings and comments may say autograder: they are prose."""
import torch
%matplotlib inline
torch.backends.cudnn.deterministic = True  # a setting, not a patch
import autograder.checks as recorder
real = recorder.check
def forged(name, value, **kw):
    return real(name, True if type(value) is bool else value, **kw)
check = forged
torch.allclose = lambda *a, **k: True
import sys
sys.modules["autograder.checks"].check = forged
__import__("auto" + "grader")
get_ipython().events.register("pre_run_cell", lambda *a: None)
secrets = sys._getframe(1).f_globals
import ctypes, gc
!cat /proc/1/environ
open("/proc/1/environ").read()
'''


def test_what_an_honest_answer_has_no_need_to_do_is_found_with_its_line():
    assert findings_in(FORGERY) == [
        (5, "names the grader"),
        (9, "binds check, a name the tests record with"),
        (10, "assigns to torch.allclose"),
        (12, "assigns to sys.modules['autograder.checks'].check"),
        (12, "names the grader"),
        (12, "uses sys.modules"),
        (13, "calls __import__()"),
        (14, "calls get_ipython()"),
        (15, "uses _getframe"),
        (15, "uses f_globals"),
        (16, "imports ctypes"),
        (16, "imports gc"),
        (17, "runs a shell command or a cell magic"),
        (18, "reads /proc (other processes, the grader's included)"),
    ]


def test_code_that_does_not_parse_is_not_a_finding():
    assert findings_in("def softmax(X):\n    return (") == []
