"""The grader reads the student's own code for reaching into the grading (autograder.tamper)."""

from pathlib import Path

import nbformat
import pytest

from autograder.cells import grade_id, is_answer
from autograder.tamper import findings_in, review_problem, scan

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
        (13, "uses __import__"),
        (14, "uses get_ipython"),
        (15, "uses _getframe"),
        (15, "uses f_globals"),
        (16, "imports ctypes"),
        (17, "runs a shell command"),
        (18, "reads /proc (other processes, the grader's included)"),
    ]


@pytest.mark.parametrize(("source", "finding"), [
    ("%time check = fake", (1, "binds check, a name the tests record with")),  # magics are read as IPython runs them
    ("%timeit -n 3 check = fake", (1, "binds check, a name the tests record with")),
    ("%%time\nx = 1\ncheck = fake", (3, "binds check, a name the tests record with")),
    ("x = 1\n%time check = fake", (2, "binds check, a name the tests record with")),
    ("squares = [i * i for i in range(3)]\ncheck = fake", (2, "binds check, a name the tests record with")),
    ("files = !ls\ncheck = fake", (2, "binds check, a name the tests record with")),  # IPython-only syntax parses
    ("%%bash\nls /", (1, "runs the magic %%bash")),
    ("ip = get_ipython\nip().user_ns.update(check=fake)", (2, "uses user_ns")),
    ("run = eval\nrun('1')", (1, "uses eval")),
    ("import sys as s\nm = s.modules['auto' + 'grader.checks']", (2, "uses sys.modules")),
    ("from sys import modules", (1, "uses sys.modules")),
    ("import sys\ngetattr(sys, 'mod' + 'ules')", (2, "calls getattr() on the sys module")),
    ("setattr(torch, 'allclose', lambda *a: True)", (1, "calls setattr() on the torch module")),
    ("patch = setattr\npatch(torch, 'allclose', f)", (1, "uses setattr as a value")),
    ("vars()['check'] = f", (1, "uses vars() (the namespace as a dict)")),
    ("def f():\n    global check\n    check = g", (2, "binds check, a name the tests record with")),
    ("for check in [f]:\n    pass", (1, "binds check, a name the tests record with")),
    ("import torch as T\nT.allclose = f", (2, "assigns to T.allclose")),
    ("from numpy import testing as npt\nnpt.assert_allclose = f", (2, "assigns to npt.assert_allclose")),
    ("def check(name, value, **kw):\n    pass", (1, "binds check, a name the tests record with")),
    ("class plain:\n    pass", (1, "binds plain, a name the tests record with")),
    ("import numpy as expect", (1, "binds expect, a name the tests record with")),
    ("from torch import tensor as check", (1, "binds check, a name the tests record with")),
    ("from ctypes import CDLL", (1, "imports ctypes")),
    ("from importlib import reload", (1, "imports importlib")),
    ("table = torch.__dict__", (1, "uses __dict__")),
])
def test_ways_around_the_reading_are_read_too(source, finding):
    assert finding in findings_in(source)


@pytest.mark.parametrize("source", [
    "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        for i in range(3):\n"
    "            setattr(self, f'fc{i}', nn.Linear(3, 3))\n        self.__dict__.update({})",
    "import gc\ngc.collect()\ntorch.cuda.empty_cache()",
    "%%time\nx = torch.randn(3)",
    "%matplotlib inline\nimport torch",
    "print(vars(config))",
    "trainer.monitoring = True\nimport pandas as pd\npd.options.display.max_rows = 20",
    "def f(text):\n    plain = text.lower()\n    for check in text:\n        pass\n    return plain\n"
    "class Callback:\n    def check(self, loss):\n        return loss",
    "import inspect\nprint(inspect.signature(f))",
    'print("ready for the autograder")',
    "act = getattr(torch, 'tanh')\nfor m in net.modules():\n    pass",
    "torch.backends.cudnn.benchmark = True\nnp.random.seed(0)",
    "counts = {check: 1 for check in range(3)}",
])
def test_ordinary_deep_learning_code_is_not_flagged(source):
    assert findings_in(source) == []


def test_code_that_does_not_parse_is_not_a_finding():
    """It raises SyntaxError when run and does nothing else (IPython syntax is translated first)."""
    assert findings_in("def softmax(X):\n    return (") == []


def test_scan_reads_answer_cells_and_added_cells_not_the_course_cells():
    """Test cells and given cells are rebuilt from the course's source before grading, so only
    the student's own cells are read, each named in the finding."""
    def cell(source, **nbgrader):
        code = nbformat.v4.new_code_cell(source)
        if nbgrader:
            code.metadata["nbgrader"] = {"grade_id": nbgrader["gid"], "solution": nbgrader.get("solution", False),
                                         "grade": nbgrader.get("grade", False), "locked": not nbgrader.get("solution")}
        return code

    notebook = nbformat.v4.new_notebook(cells=[
        cell("import torch\ncheck = print", gid="answer", solution=True),
        cell("check('x', 1)\ncheck = print", gid="test_x", grade=True),  # the course's test cell: not read
        nbformat.v4.new_markdown_cell("check = print"),
        cell("x = 1\ntorch.allclose = max"),  # no metadata: a cell the student added
    ])
    assert scan(notebook) == ["answer cell 'answer', line 2: binds check, a name the tests record with",
                              "a cell the student added, line 2: assigns to torch.allclose"]


def test_a_review_problem_names_the_first_findings_and_counts_the_rest():
    findings = [f"finding {i}" for i in range(11)]
    problem = review_problem(findings, shown=8)
    assert problem.endswith("finding 0; finding 1; finding 2; finding 3; finding 4; finding 5; finding 6; "
                            "finding 7; and 3 more")
    assert review_problem(findings[:8]).endswith("finding 6; finding 7")
