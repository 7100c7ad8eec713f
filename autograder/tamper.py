"""Step 2b: read the student's own code, as text, for reaching into the grading.

Test cells record what they computed with ``check`` and the grader compares the records
with the solution's, so rigged objects and patched comparison functions gain nothing.
Code in the student's kernel can still replace ``check`` itself, or the records it writes,
and record what it likes. Where a check's value must match one computed from hidden inputs
(outputs, and references from ``expect``), a forged record must hold that value, which
takes computing the right answer. Where the passing value is known in advance (an error
was raised, an input was left unchanged, a rule was kept), a forged record gains the
check, and no defence inside the kernel can stop that.

So the grader also reads the code the student wrote (answer cells and cells they added,
as IPython turns them into Python; it never runs them here) and flags the submission for
review when that code does what an honest solution has no reason to: bind ``check`` again
at the top level (also through a walrus in a comprehension, a ``match`` pattern or
``__main__``), name the grader, reach into the interpreter (frames, ``inspect.stack``,
``sys.modules``, ``ctypes``, IPython's namespace) or ``/proc``, use ``exec``, ``eval`` or
``__import__`` (code built from strings), run other programs (``!`` commands, ``os.system``,
``subprocess``) or magics other than timing ones, or change attributes of modules
(``torch.allclose = ...``, also through ``vars()`` or ``__setattr__``, and under another name:
:mod:`autograder.module_names` follows a module from cell to cell, through renames,
containers, loops and the notebook's own functions).
A flag scores nothing by itself: it tells the instructor where to look.
"""

from __future__ import annotations

import ast

import nbformat

from autograder.cells import grade_id, is_answer, is_autograded_test
from autograder.module_names import GUARDED_MODULES, ModuleNames, module_names, root_of

GRADING_WORDS = ("autograder", "AUTOGRADER_CHECKS", "checks.jsonl")
RECORDER_NAMES = frozenset({"check", "plain", "expect"})  # what test cells call from autograder.checks
# Any use of these names: code from strings, the namespace as a dict, IPython's shell.
DYNAMIC_NAMES = frozenset({"exec", "eval", "compile", "__import__", "globals", "locals", "breakpoint",
                           "get_ipython", "__builtins__"})
# In IPython, __main__ is the notebook's namespace: ``__main__.check = fake`` rebinds check.
INTERPRETER_MODULES = frozenset({"ctypes", "cffi", "builtins", "importlib", "autograder", "__main__"})
PROGRAM_MODULES = frozenset({"subprocess", "pty"})  # run other programs, as shell commands do
OS_PROGRAM_CALLS = frozenset({"system", "popen", "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp",
                              "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
                              "spawnvpe", "posix_spawn", "posix_spawnp"})
# inspect's ways to the calling frames, and to a module from anything it defined
INSPECT_FRAMES = frozenset({"stack", "trace", "getinnerframes", "getmodule"})
# Attributes that reach frames, other code's globals, the garbage collector's object lists,
# tracing hooks, torch's function-mode stack (which watches the rules) or IPython's namespace.
INTERPRETER_ATTRIBUTES = frozenset({
    "_getframe", "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "gi_frame", "cr_frame",
    "__globals__", "__code__", "__closure__", "__builtins__", "__subclasses__", "settrace", "setprofile",
    "currentframe", "getouterframes", "get_referrers", "get_referents", "get_objects", "_pop_mode", "_push_mode",
    "_pop_torch_function_stack", "_push_on_torch_function_stack", "DisableTorchFunction",
    "DisableTorchFunctionSubclass", "_disabled_torch_function_impl", "_set_torch_function_mode", "user_ns",
    "user_global_ns", "__self__", "__defaults__", "__kwdefaults__", "__bases__", "__base__", "__mro__",
})
SYS_ATTRIBUTES = frozenset({"modules", "monitoring", "meta_path", "path_hooks"})  # only on the sys module
# Attributes watched only on their own module (``torch.stack`` is not ``inspect.stack``):
# module -> (names, what using one of them is called).
MODULE_ATTRIBUTES = {
    "sys": (SYS_ATTRIBUTES, "uses sys.{}"),
    "inspect": (INSPECT_FRAMES, "uses inspect.{}"),
    "os": (OS_PROGRAM_CALLS, "runs a shell command (os.{})"),
}
# Magics whose argument or body is Python run in the notebook's namespace: read like code.
PYTHON_MAGICS = frozenset({"time", "timeit", "prun", "capture"})
HARMLESS_MAGICS = frozenset({"matplotlib", "html", "markdown", "latex", "svg", "javascript", "js"})
MAGIC_CALLS = frozenset({"run_line_magic", "run_cell_magic", "system", "getoutput"})


def _ipython_to_python(source: str) -> str:
    """The cell as IPython runs it: magics and ``!`` commands become calls on ``get_ipython()``."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover - the course environment has IPython
        return source
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - IPython could not transform it either: read it as it is
        return source


def _through_class(node: ast.AST) -> bool:
    """Whether ``node`` reaches a class from one of its objects (``x.__class__``, ``type(x)``),
    other than a method's own object (``type(self)``)."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        if isinstance(node, ast.Attribute) and node.attr == "__class__":
            owner = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "type" \
                and len(node.args) == 1:
            owner = node.args[0]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and node.args[1].value == "__class__":
            owner = node.args[0]
        else:
            node = node.func if isinstance(node, ast.Call) else node.value
            continue
        return not (isinstance(owner, ast.Name) and owner.id in ("self", "cls"))
    return False


def _module_attribute(module: str | None, name: str) -> str | None:
    """The finding for ``module.name`` (or ``from module import name``) in :data:`MODULE_ATTRIBUTES`."""
    names, finding = MODULE_ATTRIBUTES.get(module or "", ((), ""))
    return finding.format(name) if name in names else None


def _magic(node: ast.Call) -> tuple[str, list[str]] | None:
    """``(kind, constant string arguments)`` of ``get_ipython().<magic call>(...)``, as IPython
    writes magics and shell commands, else None."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr in MAGIC_CALLS and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Name) and func.value.func.id == "get_ipython"):
        return None
    strings = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return (func.attr, strings) if len(strings) == len(node.args) else None


class _Reader(ast.NodeVisitor):
    """Collects ``(line, what)`` findings; ``depth`` counts the scopes (functions, classes,
    lambdas, comprehensions) around a node: a name bound at depth 0 is the notebook's."""

    def __init__(self, names: ModuleNames, line_offset: int) -> None:
        self.names, self.offset, self.depth = names, line_offset, 0
        self.comprehensions = 0  # of the scopes in depth, how many are comprehensions
        self.found: list[tuple[int, str]] = []
        self.magic_ipython: set[int] = set()  # get_ipython names that belong to a magic
        self.called: set[int] = set()  # setattr, delattr and vars names that are called

    def add(self, node: ast.AST, what: str) -> None:
        self.found.append((getattr(node, "lineno", 1) + self.offset, what))

    def module_of(self, node: ast.AST) -> str | None:
        root = root_of(node)
        # torch.x.y, F.relu(x).z; then next(iter(mods)).z
        return (self.names.modules.get(root.id) if isinstance(root, ast.Name) else None) or self.names.module_in(node)

    def scoped(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if self.depth == 0 and node.name in RECORDER_NAMES:
            self.add(node, f"binds {node.name}, a name the tests record with")
        for outside in [*node.decorator_list, node.args]:  # evaluated where the function is defined
            self.visit(outside)
        self.depth += 1
        for statement in node.body:
            self.visit(statement)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = scoped

    def comprehension(self, node: ast.AST) -> None:
        self.comprehensions += 1
        self.scoped(node)
        self.comprehensions -= 1

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = comprehension

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        # (check := fake) binds in the scope around any comprehensions it is written in
        if self.depth == self.comprehensions and node.target.id in RECORDER_NAMES:
            self.add(node, f"binds {node.target.id}, a name the tests record with")
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs | ast.MatchStar) -> None:
        if self.depth == 0 and node.name in RECORDER_NAMES:  # case check: binds check
            self.add(node, f"binds {node.name}, a name the tests record with")
        self.generic_visit(node)

    visit_MatchStar = visit_MatchAs

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if self.depth == 0 and node.rest in RECORDER_NAMES:  # case {**check}
            self.add(node, f"binds {node.rest}, a name the tests record with")
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        if self.depth == 0 and node.name in RECORDER_NAMES:
            self.add(node, f"binds {node.name}, a name the tests record with")
        self.scoped(node)

    def visit_Global(self, node: ast.Global) -> None:
        for name in set(node.names) & RECORDER_NAMES:
            self.add(node, f"binds {name}, a name the tests record with")

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        for module in modules:
            if module.split(".")[0] in INTERPRETER_MODULES:
                self.add(node, "names the grader" if module.startswith("autograder") else f"imports {module}")
            elif module.split(".")[0] in PROGRAM_MODULES:
                self.add(node, f"imports {module} (runs other programs)")
        for alias in node.names:
            bound = alias.asname or alias.name.split(".")[0]
            if self.depth == 0 and bound in RECORDER_NAMES:
                self.add(node, f"binds {bound}, a name the tests record with")
            if isinstance(node, ast.ImportFrom) and (what := _module_attribute(node.module, alias.name)):
                self.add(node, what)

    visit_ImportFrom = visit_Import

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)) and self.depth == 0 and node.id in RECORDER_NAMES:
            self.add(node, f"binds {node.id}, a name the tests record with")
        if node.id in DYNAMIC_NAMES and id(node) not in self.magic_ipython:
            self.add(node, f"uses {node.id}")
        if node.id in ("setattr", "delattr", "vars") and id(node) not in self.called:
            self.add(node, f"uses {node.id} as a value")  # called, it is judged in visit_Call
        if any(word in node.id for word in GRADING_WORDS):
            self.add(node, "names the grader")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in INTERPRETER_ATTRIBUTES:
            self.add(node, f"uses {node.attr}")
        elif what := _module_attribute(self.module_of(node.value), node.attr):
            self.add(node, what)
        elif node.attr in SYS_ATTRIBUTES and isinstance(node.value, ast.Attribute) and node.value.attr == "sys":
            self.add(node, f"uses sys.{node.attr}")  # os.sys.modules, torch.sys.modules
        elif node.attr == "__dict__" and not (isinstance(node.value, ast.Name) and node.value.id == "self"):
            self.add(node, "uses __dict__")
        if isinstance(node.ctx, (ast.Store, ast.Del)) and (module := self.module_of(node)) in GUARDED_MODULES \
                and not self.is_setting(node):
            root = root_of(node)
            holder = f" ({root.id} can be or hold the {module} module)" \
                if isinstance(root, ast.Name) and root.id in self.names.held else ""
            self.add(node, f"assigns to {ast.unparse(node)[:80]}{holder}")
        elif isinstance(node.ctx, (ast.Store, ast.Del)) and _through_class(node.value):
            self.add(node, f"assigns to {ast.unparse(node)[:80]} (an attribute of a class, through one of its objects)")
        if any(word in node.attr for word in GRADING_WORDS):
            self.add(node, "names the grader")
        self.generic_visit(node)

    def is_setting(self, node: ast.Attribute) -> bool:
        """``torch.backends.cudnn.benchmark = True`` (also as ``cudnn.benchmark``) sets an option:
        not a patch, unless the path goes on into something else (``torch.backends.cudnn.torch``)."""
        path = self.names.path_of(node)
        parts = path.split(".") if path else []
        return parts[:2] == ["torch", "backends"] and not any(p == "torch" or p.startswith("__") for p in parts[2:])

    def visit_Constant(self, node: ast.Constant) -> None:
        text = node.value if isinstance(node.value, str) else ""
        if text and not any(c.isspace() for c in text) and any(word in text for word in GRADING_WORDS):
            self.add(node, "names the grader")  # an identifier or path; prose with spaces is not
        if text in INTERPRETER_ATTRIBUTES or text == "__dict__":  # getattr(f, "__globals__"), attrgetter(...)
            self.add(node, f"uses {text} (named in a string)")
        if text.startswith("/proc/") or text == "/proc":
            self.add(node, "reads /proc (other processes, the grader's included)")

    def visit_Expr(self, node: ast.Expr) -> None:
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):  # docstrings are prose
            self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        magic = _magic(node)
        if magic is not None:
            self.magic_ipython.add(id(node.func.value.func))
            self.magic_call(node, *magic)
        func = node.func
        if isinstance(func, ast.Name):
            self.called.add(id(func))
        if isinstance(func, ast.Name) and func.id in ("setattr", "delattr", "getattr") and node.args:
            module = self.module_of(node.args[0])
            if module in (GUARDED_MODULES if func.id != "getattr" else INTERPRETER_MODULES | {"sys"}):
                self.add(node, f"calls {func.id}() on the {module} module")
            elif func.id != "getattr" and _through_class(node.args[0]):
                self.add(node, f"calls {func.id}() on a class, through one of its objects")
        if isinstance(func, ast.Name) and func.id == "vars" and not node.args:
            self.add(node, "uses vars() (the namespace as a dict)")
        elif isinstance(func, ast.Name) and func.id == "vars" and self.module_of(node.args[0]) in GUARDED_MODULES:
            self.add(node, f"calls vars() on the {self.module_of(node.args[0])} module")
        if isinstance(func, ast.Attribute) and func.attr in ("__setattr__", "__delattr__"):
            # object.__setattr__(torch, ...), type(torch).__setattr__(torch, ...), torch.__setattr__(...)
            module = self.module_of(node.args[0]) if node.args else None
            owner = func.value  # torch.__setattr__ or torch.testing.__setattr__, not nn.Module.__setattr__
            if module not in GUARDED_MODULES and (isinstance(owner, ast.Name) or (
                    isinstance(owner, ast.Attribute) and owner.attr[:1].islower())):
                module = self.module_of(owner)
            if module in GUARDED_MODULES:
                self.add(node, f"calls {func.attr} on the {module} module")
        self.generic_visit(node)

    def magic_call(self, node: ast.Call, kind: str, strings: list[str]) -> None:
        if kind in ("system", "getoutput"):
            self.add(node, "runs a shell command")
            return
        name = strings[0].split()[0] if strings and strings[0].split() else ""
        if name in HARMLESS_MAGICS:
            return
        if name not in PYTHON_MAGICS:
            self.add(node, f"runs the magic %{'%' if kind == 'run_cell_magic' else ''}{name}")
            return
        # %time <statement>, or %%time with the cell's body: that code runs in the namespace.
        code = strings[-1] if kind == "run_cell_magic" else " ".join(strings[1:])
        if kind == "run_line_magic":  # options such as -n 3 come first: keep what parses
            words = code.split()
            # options come first and are few: try the first few starts only (a cell of thousands
            # of words would otherwise be parsed once per word)
            code = next((" ".join(words[i:]) for i in range(min(len(words), 12) + 1)
                         if _parses(" ".join(words[i:]))), "")
        offset = getattr(node, "lineno", 1) + self.offset - (0 if kind == "run_cell_magic" else 1)
        self.found += findings_in(code, offset, self.names)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


def _parsed(source: str) -> ast.Module | None:
    try:
        return ast.parse(_ipython_to_python(source))
    except SyntaxError:
        return None  # IPython cannot run it either: the cell raises SyntaxError and does nothing


def findings_in(source: str, line_offset: int = 0, names: ModuleNames | None = None) -> list[tuple[int, str]]:
    """``(line, what)`` for each construct of the module docstring found in ``source``
    (a cell), with ``names`` bound in other cells (or around the code a magic runs)."""
    try:
        tree = _parsed(source)
        if tree is None:
            return []
        reader = _Reader(module_names(tree, names), line_offset)
        reader.visit(tree)
    except RecursionError:  # the kernel cannot compile it either; the grader must not stop on it
        return [(line_offset + 1, "is nested too deeply to be read")]
    return sorted(set(reader.found))


def scan(notebook: nbformat.NotebookNode) -> list[str]:
    """One line per finding in the student's cells (answer cells and cells without a grade
    id: those the student added), in notebook order. A name bound in one cell is followed
    into the others (the kernel keeps it): ``import torch as T`` in one, ``T.allclose = f``
    in the next. Test cells are left out of that; they are replaced before grading."""
    code = [cell for cell in notebook.cells if cell.cell_type == "code" and not is_autograded_test(cell)]
    try:
        trees = [tree for cell in code if (tree := _parsed(cell.source)) is not None]
        names = module_names(ast.Module(body=[s for tree in trees for s in tree.body], type_ignores=[]))
    except Exception:  # noqa: BLE001 - untrusted code must not stop the grader; each cell is read below
        names = None
    lines = []
    for cell in code:
        gid = grade_id(cell)
        if gid is not None and not is_answer(cell):
            continue
        where = f"answer cell {gid!r}" if gid else "a cell the student added"
        try:
            lines += [f"{where}, line {line}: {what}" for line, what in findings_in(cell.source, names=names)]
        except Exception as exc:  # noqa: BLE001 - a flag for the instructor, not a crash of the grader
            lines.append(f"{where}: could not be read ({type(exc).__name__})")
    return lines


def review_problem(findings: list[str], shown: int = 8) -> str:
    """The problem a flagged submission carries, for the instructor's review."""
    more = f"; and {len(findings) - shown} more" if len(findings) > shown else ""
    return ("for review: the notebook's own code reaches into the grading or the interpreter, which an honest "
            "answer has no need to do (it could have recorded checks it did not earn): "
            + "; ".join(findings[:shown]) + more)
