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
    # found by a review of the scan: check bound by a walrus (which binds outside its
    # comprehension) or a match pattern, __main__ (the notebook's namespace), modules renamed
    # by assignment or patched through vars() or __setattr__, programs run through os and
    # subprocess, frames reached through inspect
    ("[check := fake for _ in [0]]", (1, "binds check, a name the tests record with")),  # binds outside
    ("match fake:\n    case check:\n        pass", (2, "binds check, a name the tests record with")),
    ("match fakes:\n    case [*check]:\n        pass", (2, "binds check, a name the tests record with")),
    ("match fakes:\n    case {**check}:\n        pass", (2, "binds check, a name the tests record with")),
    ("import __main__\n__main__.check = fake", (1, "imports __main__")),
    ("T = torch\nT.allclose = lambda *a, **k: True", (2, "assigns to T.allclose")),
    ("A = np\nB = A\nB.allclose = f", (3, "assigns to B.allclose")),
    ('vars(torch)["allclose"] = lambda *a, **k: True', (1, "calls vars() on the torch module")),
    ('type(torch).__setattr__(torch, "allclose", f)', (1, "calls __setattr__ on the torch module")),
    ('object.__setattr__(torch.testing, "assert_close", f)', (1, "calls __setattr__ on the torch module")),
    ('torch.testing.__delattr__("assert_close")', (1, "calls __delattr__ on the torch module")),
    ('import os\nos.system("cat /etc/passwd")', (2, "runs a shell command (os.system)")),
    ('from os import popen\npopen("ls")', (1, "runs a shell command (os.popen)")),
    ('import subprocess\nsubprocess.run("ls", shell=True)', (1, "imports subprocess (runs other programs)")),
    ("import inspect\nframe = inspect.stack()[1].frame", (2, "uses inspect.stack")),
    ("from inspect import trace", (1, "uses inspect.trace")),
])
def test_ways_around_the_reading_are_read_too(source, finding):
    assert finding in findings_in(source)


@pytest.mark.parametrize(("source", "finding"), [
    ('exec("check = lambda *a, **k: None")', (1, "uses exec")),
    ('code = compile("check = fake", "<cell>", "exec")', (1, "uses compile")),
    ('globals()["check"] = fake', (1, "uses globals")),
    ('locals()["check"] = fake', (1, "uses locals")),
    ("breakpoint()", (1, "uses breakpoint")),
    ('__builtins__["check"] = fake', (1, "uses __builtins__")),
    ("import cffi", (1, "imports cffi")),
    ("import builtins", (1, "imports builtins")),
    ("import sys\ncaller = sys._getframe().f_back", (2, "uses f_back")),
    ("names = frame.f_locals", (1, "uses f_locals")),
    ('frame.f_builtins["isinstance"] = fake', (1, "uses f_builtins")),
    ("source = frame.f_code.co_filename", (1, "uses f_code")),
    ("frame = error.__traceback__.tb_frame", (1, "uses tb_frame")),
    ("frame = (x for x in []).gi_frame", (1, "uses gi_frame")),
    ("frame = coroutine.cr_frame", (1, "uses cr_frame")),
    ('record = check.__globals__["_records"]', (1, "uses __globals__")),
    ("check.__code__ = fake.__code__", (1, "uses __code__")),
    ("cells = check.__closure__", (1, "uses __closure__")),
    ('real = check.__builtins__["open"]', (1, "uses __builtins__")),
    ("classes = object.__subclasses__()", (1, "uses __subclasses__")),
    ("import sys\nsys.settrace(tracer)", (2, "uses settrace")),
    ("import sys\nsys.setprofile(profiler)", (2, "uses setprofile")),
    ("import inspect\nframe = inspect.currentframe()", (2, "uses currentframe")),
    ("import inspect\nframes = inspect.getouterframes(frame)", (2, "uses getouterframes")),
    ("import gc\nowners = gc.get_referrers(check)", (2, "uses get_referrers")),
    ("import gc\nparts = gc.get_referents(check)", (2, "uses get_referents")),
    ("import gc\nobjects = gc.get_objects()", (2, "uses get_objects")),
    ("mode = torch.overrides._pop_mode()", (1, "uses _pop_mode")),
    ("torch.overrides._push_mode(mode)", (1, "uses _push_mode")),
    ("mode = torch._C._pop_torch_function_stack()", (1, "uses _pop_torch_function_stack")),
    ("torch._C._push_on_torch_function_stack(mode)", (1, "uses _push_on_torch_function_stack")),
    ("with torch._C.DisableTorchFunction():\n    pass", (1, "uses DisableTorchFunction")),
    ("with torch._C.DisableTorchFunctionSubclass():\n    pass", (1, "uses DisableTorchFunctionSubclass")),
    ("__torch_function__ = torch._C._disabled_torch_function_impl", (1, "uses _disabled_torch_function_impl")),
    ("torch._C._set_torch_function_mode(None)", (1, "uses _set_torch_function_mode")),
    ('shell.user_global_ns["check"] = fake', (1, "uses user_global_ns")),
    ('import sys\nsys.monitoring.use_tool_id(0, "spy")', (2, "uses sys.monitoring")),
    ("import sys\nsys.meta_path.insert(0, finder)", (2, "uses sys.meta_path")),
    ("import sys\nsys.path_hooks.append(hook)", (2, "uses sys.path_hooks")),
    ('import os\npath = os.environ["AUTOGRADER_CHECKS"]', (2, "names the grader")),
    ('open("checks.jsonl", "a").write(line)', (1, "names the grader")),
    ("autograder.checks.check = fake", (1, "names the grader")),  # the grader's own module, not imported
    ("package = sys.modules[name]\npackage.autograder.checks.check = fake", (2, "names the grader")),
    ('import os\nos.listdir("/proc")', (2, "reads /proc (other processes, the grader's included)")),
    ("strip = delattr", (1, "uses delattr as a value")),
    ("namespace = vars", (1, "uses vars as a value")),
    ('delattr(F, "mse_loss")', (1, "calls delattr() on the torch module")),
    ("files = !ls", (1, "runs a shell command")),
    ("%prun check = fake", (1, "binds check, a name the tests record with")),
    ("%%capture\ncheck = fake", (2, "binds check, a name the tests record with")),
    ("%timeit -n 1 check=fake", (1, "binds check, a name the tests record with")),  # one word after the options
    ("%%time\nx = 1\n%time check = fake", (3, "binds check, a name the tests record with")),  # a magic in a magic
])
def test_each_name_the_reading_knows_is_read(source, finding):
    """One snippet per name in the module's lists (frames, namespaces, torch's mode stack, sys's import
    hooks, the grader's files), so none of them drops out of a list unnoticed."""
    assert finding in findings_in(source)


@pytest.mark.parametrize("source", [
    "F.mse_loss = lambda a, b: torch.tensor(0.0)",  # the setup cells import these: no import in the cell
    "nn.functional.relu = fake",
    "np.allclose = lambda *a, **k: True",
    "math.isclose = lambda *a, **k: True",
    "import builtins as b\nb.isinstance = fake",
    "import autograder.checks as recorder\nrecorder.check = fake",
    "import os\nos.environ = {}",
    "import functools\nfunctools.partial = fake",
    "import operator\noperator.eq = fake",
    "import json\njson.loads = fake",
    "import random\nrandom.random = fake",
    "import io\nio.open = fake",
    "import pathlib\npathlib.Path.read_text = fake",
    "import importlib\nimportlib.import_module = fake",
    "import types\ntypes.SimpleNamespace = fake",
    "import numpy.testing\nnumpy.testing.assert_allclose = fake",
    "import torch.nn.functional as fun\nfun.relu = fake",
    "from torch.nn import functional as G\nG.relu = fake",
])
def test_assigning_to_an_attribute_of_any_guarded_module_is_found(source):
    *_, last = source.splitlines()
    target = last.split(" = ")[0]
    assert (len(source.splitlines()), f"assigns to {target}") in findings_in(source)


HELD = "({} can be or hold the {} module)"


@pytest.mark.parametrize(("source", "finding"), [
    ("for m in [torch, np]:\n    m.allclose = f", (2, f"assigns to m.allclose {HELD.format('m', 'torch')}")),
    ("mods = [torch]\nmods[0].allclose = f", (2, f"assigns to mods[0].allclose {HELD.format('mods', 'torch')}")),
    ('d = {}\nd["t"] = torch\nfor k, v in d.items():\n    v.allclose = f',
     (4, f"assigns to v.allclose {HELD.format('v', 'torch')}")),
    ("mods = list((np,))\nnext(iter(mods)).allclose = f", (2, "assigns to next(iter(mods)).allclose")),
    ('[setattr(m, "allclose", f) for m in (torch, np)]', (1, "calls setattr() on the torch module")),
    ("T = torch.Tensor\nT.__eq__ = f", (2, "assigns to T.__eq__")),
    ("testing = getattr(torch, 'testing')\ntesting.assert_close = f",
     (2, f"assigns to testing.assert_close {HELD.format('testing', 'torch')}")),
    ("def patch(x, m):\n    m.allclose = f\npatch(1, torch)", (2, f"assigns to m.allclose {HELD.format('m', 'torch')}")),
    ("def patch(m=torch.testing):\n    m.assert_close = f",
     (2, f"assigns to m.assert_close {HELD.format('m', 'torch')}")),
    ("def patch(*ms):\n    for m in ms:\n        m.isclose = f\npatch(math)",
     (3, f"assigns to m.isclose {HELD.format('m', 'math')}")),
    ('def patch(**ms):\n    ms["a"].allclose = f\npatch(a=torch)',
     (2, f"assigns to ms['a'].allclose {HELD.format('ms', 'torch')}")),
    ('patch = lambda m: setattr(m, "allclose", f)\npatch(torch)', (1, "calls setattr() on the torch module")),
    ('list(map(lambda m: setattr(m, "allclose", f), [torch]))', (1, "calls setattr() on the torch module")),
    ("import sys as s\nfor m in [s]:\n    m.modules.clear()", (3, "uses sys.modules")),
    ("def get():\n    return torch\nget().allclose = f", (3, "assigns to get().allclose")),
    ("get = lambda: [np]\nm = get()[0]\nm.allclose = f", (3, f"assigns to m.allclose {HELD.format('m', 'numpy')}")),
    # found by a review of the first version: container methods, comprehensions, operators,
    # match, generators, context managers, lambdas called in place, filter, *args
    ("mods = []\nmods.append(torch)\nmods[0].allclose = f", (3, f"assigns to mods[0].allclose {HELD.format('mods', 'torch')}")),
    ("d = {}\nd.update(t=np)\nd['t'].allclose = f", (3, f"assigns to d['t'].allclose {HELD.format('d', 'numpy')}")),
    ("mods = [m for m in (torch,)]\nmods[0].allclose = f", (2, f"assigns to mods[0].allclose {HELD.format('mods', 'torch')}")),
    ("for m in [] + [torch] * 2:\n    m.allclose = f", (2, f"assigns to m.allclose {HELD.format('m', 'torch')}")),
    ("match torch:\n    case m:\n        m.allclose = f", (3, f"assigns to m.allclose {HELD.format('m', 'torch')}")),
    ("def mods():\n    yield torch\nfor m in mods():\n    m.allclose = f", (4, f"assigns to m.allclose {HELD.format('m', 'torch')}")),
    ("from contextlib import contextmanager\n@contextmanager\ndef patched():\n    yield torch\n"
     "with patched() as m:\n    m.allclose = f", (6, f"assigns to m.allclose {HELD.format('m', 'torch')}")),
    ("(lambda m: m)(torch).allclose = f", (1, "assigns to (lambda m: m)(torch).allclose")),
    ("def patch(m):\n    m.allclose = f\nlist(filter(patch, [torch]))", (2, f"assigns to m.allclose {HELD.format('m', 'torch')}")),
    ("def patch(*ms):\n    ms[0].allclose = f\npatch(*[torch])", (2, f"assigns to ms[0].allclose {HELD.format('ms', 'torch')}")),
    ("max([torch], key=id).allclose = f", (1, "assigns to max([torch], key=id).allclose")),
    ("list({'a': torch}.values())[0].allclose = f", (1, "assigns to list({'a': torch}.values())[0].allclose")),
    ("from torch.backends import cudnn\ncudnn.torch.allclose = f", (2, "assigns to cudnn.torch.allclose")),
    ("torch.backends.cudnn.torch.allclose = f", (1, "assigns to torch.backends.cudnn.torch.allclose")),
    ("type(torch.zeros(1)).__eq__ = f", (1, "assigns to type(torch.zeros(1)).__eq__ (an attribute of a class, through one of its objects)")),
    ("x = torch.zeros(1)\nx.__class__.__bool__ = f", (2, "assigns to x.__class__.__bool__ (an attribute of a class, through one of its objects)")),
    ("b = len.__self__\nb.isinstance = f", (1, "uses __self__")),
    ("def g(m=None):\n    m.allclose = f\ng.__defaults__ = (torch,)", (3, "uses __defaults__")),
    ("def g(*, m=None):\n    m.allclose = f\ng.__kwdefaults__ = {'m': torch}", (3, "uses __kwdefaults__")),
    # found by a second review: classes patched through objects by any attribute, names in strings,
    # sys reached through another module, a star import
    ("type(x).allclose = f", (1, "assigns to type(x).allclose (an attribute of a class, through one of its objects)")),
    ("setattr(type(x), '__eq__', f)", (1, "calls setattr() on a class, through one of its objects")),
    ("getattr(x, '__class__').__eq__ = f",
     (1, "assigns to getattr(x, '__class__').__eq__ (an attribute of a class, through one of its objects)")),
    ("class E(torch.Tensor):\n    pass\nE.__bases__[0].__eq__ = f", (3, "uses __bases__")),
    ("getattr(check, '__globals__')['check'] = fake", (1, "uses __globals__ (named in a string)")),
    ("from operator import attrgetter\nattrgetter('__globals__')(check)['check'] = fake",
     (2, "uses __globals__ (named in a string)")),
    ("import os\nos.sys.modules['__main__'].check = fake", (2, "uses sys.modules")),
    ("import inspect\ninspect.getmodule(torch.zeros).allclose = f", (2, "uses inspect.getmodule")),
    ("from torch import *\nTensor.__eq__ = f", (2, "assigns to Tensor.__eq__")),
    ("from torch import testing\nfor m in [testing]:\n    m.assert_close = f",
     (3, f"assigns to m.assert_close {HELD.format('m', 'torch')}")),
    ("for i, m in enumerate([np]):\n    m.allclose = f", (2, f"assigns to m.allclose {HELD.format('m', 'numpy')}")),
    ("for x, m in zip(xs, [math]):\n    m.isclose = f", (2, f"assigns to m.isclose {HELD.format('m', 'math')}")),
])
def test_a_module_reached_through_a_container_a_loop_or_a_call_is_followed(source, finding):
    assert finding in findings_in(source)


def test_a_magic_the_reading_does_not_know_is_one_finding():
    """The body of %%writefile is not run in the namespace: it is not read as code."""
    assert findings_in("%%writefile helper.py\nimport ctypes") == [(1, "runs the magic %%writefile")]


def test_a_magic_without_a_name_and_a_hand_written_magic_call():
    """``%`` alone is a magic with no name; a magic call whose arguments are not constants is
    not one IPython wrote: it is read as a use of get_ipython."""
    assert findings_in("%") == [(1, "runs the magic %")]
    assert findings_in("line = 'check = fake'\nget_ipython().run_line_magic('time', line)") == [
        (2, "uses get_ipython")]


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
    "%%capture\nhistory = train(model)",
    "%%html\n<b>done</b>",
    "%%markdown\n# Results",
    "%%latex\n$\\sum_i x_i$",
    "%%svg\n<svg></svg>",
    "%%javascript\nconsole.log(1)",
    "%%js\nconsole.log(1)",
    "class Net(nn.Module):\n    def __setattr__(self, name, value):\n        nn.Module.__setattr__(self, name, value)",
    "object.__setattr__(self, 'frozen', True)",
    "def f(xs):\n    return [check := x for x in xs]",
    "sizes = [n := len(x) for x in batches]",
    "match mode:\n    case 'train':\n        model.train()\n    case other:\n        model.eval()",
    "backend = torch\nx = backend.stack([backend.randn(3)])\nlayers = torch.stack(xs)",
    # modules and their functions passed around as values, and attributes set on ordinary objects
    "class RNN(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.act = torch.tanh\n"
    "        self.W = nn.Parameter(torch.zeros(3))",
    "def rnn(X, W, act=torch.tanh):\n    X.grad = None\n    return act(X @ W)\nrnn(X, W, F.relu)",
    "for name, act in [('tanh', torch.tanh), ('relu', F.relu)]:\n    print(name, act(x))",
    "params = [W, b]\nfor p in params:\n    p.grad = None\nfor p in net.parameters():\n    p.requires_grad = False",
    "def sgd(params, lr):\n    for p in params:\n        p.data -= lr * p.grad\nsgd([W], torch.tensor(0.1))",
    "y = np.copy(x)\ny.shape = (2, 3)\nsaved = {'w': W.copy()}\nsaved.get('w').flags.writeable = False",
    "opt = torch.optim.SGD(net.parameters(), lr=0.1)\nopt.param_groups[0]['lr'] = 0.01",
    "def relu(x):\n    return torch.maximum(x, torch.zeros_like(x))\nh = relu(x)\nh.retain_grad = True",
    # what a module provides (np.nan, torch.float32, F.relu) is not the module; found by a review
    "class Trainer:\n    def __init__(self, net, lr=0.1):\n        self.net = net\n        self.best = {}\n"
    "        self.best['loss'] = math.inf\n        self.lr = lr",
    "def f(x):\n    return torch.sin(x)\nprint(f(torch.pi))\nx = torch.linspace(0, 1, 5, requires_grad=True)\nx.grad = None",
    "for p in [torch.float16, torch.float32]:\n    print(torch.finfo(p).eps)\nfor p in net.parameters():\n"
    "    p.requires_grad = False",
    "W, dtype = torch.zeros(2, 2), torch.float32\nW.requires_grad = True",
    "for p in sorted(net.parameters(), key=torch.numel):\n    p.requires_grad = False\n"
    "for v in filter(torch.is_tensor, outputs):\n    v.requires_grad = True",
    "X = np.arange(6.0)\nX[X > 3] = np.nan\nX.shape = (2, 3)\nxx, yy = np.mgrid[-2:2:0.1, -2:2:0.1]\nxx.shape = (-1,)",
    "def masked(X, value):\n    X[~mask] = value\n    return X\nout = masked(out, math.inf)\n"
    "scores = masked(scores, 0)\nscores.requires_grad = True",
    "fig, axes = plt.subplots(1, 3)\nfor ax, f in zip(axes, [torch.sigmoid, torch.tanh, F.relu]):\n"
    "    ax.plot(x, f(x))\n    ax.title.fontsize = 8",
    "class Scaler:\n    def scale(self, x):\n        self.factor = 2\ndef scale(x):\n    return x\nscale(np.nan)",
    "from torch.backends import cudnn\ncudnn.benchmark = True\ntorch.backends.cuda.matmul.allow_tf32 = True",
    # values imported by name, numpy's scalar types, classes in containers, loops over zip; a second review
    "from numpy import nan\nfrom math import pi\nX = np.arange(6.0)\nX[X > 3] = nan\nX.shape = (2, 3)\n"
    "def f(x):\n    return torch.sin(x)\nf(pi)\nx = torch.ones(3)\nx.grad = None",
    "for p in [np.float32, np.float64]:\n    print(np.finfo(p).eps)\nfor p in net.parameters():\n"
    "    p.requires_grad = False",
    "from torch.optim import SGD, Adam\nfor Opt, net in zip([SGD, Adam], [nn.Linear(2, 1), nn.Linear(2, 1)]):\n"
    "    opt = Opt(net.parameters(), lr=0.1)\n    net.weight.requires_grad = True",
    "def init_weights(m):\n    m.weight.data = torch.randn_like(m.weight) * 0.01\nfor m in [nn.Linear, nn.Conv2d]:\n"
    "    print(m.__name__)",
    "for ax, (name, opt) in zip(axes, optimizers.items()):\n    ax.xaxis.labelpad = 10\n"
    "class Counter:\n    def bump(self):\n        type(self).count += 1\n        self.__class__.seen = True",
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


def test_scan_follows_a_name_from_one_cell_into_the_next():
    """The kernel keeps what each cell binds; test cells are not followed (they are replaced)."""
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import torch as T\nmods = [np]"),
        nbformat.v4.new_code_cell("T.allclose = max\nfor m in mods:\n    m.allclose = max"),
        nbformat.v4.new_code_cell("w.grad = None"),
    ])
    test = nbformat.v4.new_code_cell("w = torch")
    test.metadata["nbgrader"] = {"grade_id": "test_w", "grade": True, "solution": False, "locked": True, "points": 1}
    notebook.cells.insert(0, test)
    assert scan(notebook) == ["a cell the student added, line 1: assigns to T.allclose",
                              f"a cell the student added, line 3: assigns to m.allclose {HELD.format('m', 'numpy')}"]


def test_code_nested_too_deeply_to_read_is_a_finding_not_a_crash():
    """Python's own compiler gives up on it too; the grader must go on to the next submission."""
    deep = "x = a" + ".a" * 3000
    assert findings_in(deep) == [(1, "is nested too deeply to be read")]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("y = 1"), nbformat.v4.new_code_cell(deep)])
    assert scan(notebook) == ["a cell the student added, line 1: is nested too deeply to be read"]


def test_a_cell_the_reading_fails_on_is_a_finding_not_a_crash(monkeypatch):
    import autograder.tamper

    def broken(tree, known=None):
        raise ValueError("a case nobody foresaw")

    monkeypatch.setattr(autograder.tamper, "module_names", broken)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("y = 1")])
    assert scan(notebook) == ["a cell the student added: could not be read (ValueError)"]


def test_a_review_problem_names_the_first_findings_and_counts_the_rest():
    findings = [f"finding {i}" for i in range(11)]
    problem = review_problem(findings, shown=8)
    assert problem.endswith("finding 0; finding 1; finding 2; finding 3; finding 4; finding 5; finding 6; "
                            "finding 7; and 3 more")
    assert review_problem(findings[:8]).endswith("finding 6; finding 7")
    assert review_problem(findings[:9]).endswith("finding 6; finding 7; and 1 more")  # eight by default
