"""Step 2b: read the student's own code, as text, for reaching into the grading.

Test cells record what they computed with ``check`` and the grader compares the records
with the solution's, so rigged objects and patched comparison functions gain nothing.
Code in the student's kernel can still replace ``check`` itself, or the records it writes,
and record what it likes. Where a check's value must match one computed from hidden inputs
(outputs, and references from ``expect``), a forged record must hold that value, which
takes solving the problem. Where the passing value is known in advance (an error was
raised, an input was left unchanged, a rule was kept), a forged record gains the check,
and no defence inside the kernel can stop that.

So the grader also reads the code the student wrote (answer cells and cells they added;
it never runs it here) and flags the submission for review when that code does what an
honest solution has no reason to: name the grader, bind ``check`` again, reach into the
interpreter (frames, ``sys.modules``, ``gc``, ``ctypes``, IPython's hooks) or other
processes (``/proc``), build code at run time (``exec``, ``__import__``) or assign to
attributes of imported modules (``torch.allclose = ...``).
A flag scores nothing by itself: it tells the instructor where to look.
"""

from __future__ import annotations

import ast
import re

import nbformat

from autograder.cells import grade_id, is_answer

GRADING_WORDS = ("autograder", "AUTOGRADER_CHECKS", "checks.jsonl")
INTERPRETER_MODULES = frozenset({"ctypes", "gc", "inspect", "builtins", "importlib", "cffi"})
INTERPRETER_ATTRIBUTES = frozenset({
    "_getframe", "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "gi_frame", "cr_frame",
    "__globals__", "__code__", "__closure__", "__builtins__", "__subclasses__", "__dict__",
    "settrace", "setprofile", "monitoring", "currentframe", "getouterframes", "get_referrers", "get_referents",
    "get_objects", "_pop_mode", "_push_mode", "_pop_torch_function_stack", "_push_on_torch_function_stack",
    "DisableTorchFunction", "DisableTorchFunctionSubclass", "_disabled_torch_function_impl", "_set_torch_function_mode",
})
DYNAMIC_CALLS = frozenset({"exec", "eval", "compile", "__import__", "globals", "vars", "setattr", "delattr",
                           "get_ipython", "breakpoint"})
# What test cells call from autograder.checks: an answer that binds one of these names again
# replaces it for every test cell after it.
RECORDER_NAMES = frozenset({"check", "plain", "expect"})
MODULE_ROOTS = frozenset({"torch", "np", "numpy", "math", "F", "nn", "sys", "os", "builtins", "autograder",
                          "functools", "operator", "json", "pathlib", "io", "random"})
# Cell magics and shell escapes run code the parser cannot see; line magics such as
# %matplotlib are harmless and are dropped before parsing.
SHELL_OR_CELL_MAGIC = re.compile(r"^\s*(!|%%|%(run|load|env|store|sx|system|writefile|bash|sh|script)\b)")


def _attribute_root(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _words(node: ast.AST) -> list[str]:
    """The names and string constants a node spells out."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [a.name for a in node.names] + [getattr(node, "module", None) or ""]
    return []


def _dotted(node: ast.expr) -> str:
    try:
        return ast.unparse(node)[:80]
    except Exception:  # noqa: BLE001 - only for the message
        return "an attribute"


def findings_in(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` for each construct of the module docstring found in ``source``."""
    found: list[tuple[int, str]] = []
    lines = []
    for number, line in enumerate(source.splitlines(), start=1):
        if SHELL_OR_CELL_MAGIC.match(line):
            found.append((number, "runs a shell command or a cell magic"))
            lines.append("")
        else:
            lines.append("" if line.lstrip().startswith("%") else line)
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return found  # it fails when run too: nothing it could do
    imported: set[str] = set()
    prose = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
            found += [(line, f"binds {a.asname or a.name}, a name the tests record with")
                      for a in node.names if (a.asname or a.name) in RECORDER_NAMES]
            for module in modules:
                top = module.split(".")[0]
                if top in INTERPRETER_MODULES:
                    found.append((line, f"imports {module}"))
        elif isinstance(node, ast.Attribute) and node.attr in INTERPRETER_ATTRIBUTES:
            found.append((line, f"uses {node.attr}"))
        elif isinstance(node, ast.Attribute) and node.attr == "modules" and _attribute_root(node) == "sys":
            found.append((line, "uses sys.modules"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DYNAMIC_CALLS:
            found.append((line, f"calls {node.func.id}()"))
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id in RECORDER_NAMES:
            found.append((line, f"binds {node.id}, a name the tests record with"))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in RECORDER_NAMES:
            found.append((line, f"binds {node.name}, a name the tests record with"))
        if isinstance(node, ast.Name) and node.id == "__builtins__":
            found.append((line, "uses __builtins__"))
        texts = [] if id(node) in prose else _words(node)
        if any(word in text for text in texts for word in GRADING_WORDS):
            found.append((line, "names the grader"))
        if any(text.startswith("/proc/") for text in texts):
            found.append((line, "reads /proc (other processes, the grader's included)"))
    for node in ast.walk(tree):  # monkeypatching: assigning to what an import bound
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            root = _attribute_root(target) if isinstance(target, ast.Attribute) else None
            if root in imported | MODULE_ROOTS and not _dotted(target).startswith("torch.backends."):
                found.append((node.lineno, f"assigns to {_dotted(target)}"))
    return sorted(set(found))


def scan(notebook: nbformat.NotebookNode) -> list[str]:
    """One line per finding in the student's cells (answer cells and cells without a grade
    id: those the student added), in notebook order."""
    lines = []
    for cell in notebook.cells:
        gid = grade_id(cell)
        if cell.cell_type != "code" or (gid is not None and not is_answer(cell)):
            continue
        where = f"answer cell {gid!r}" if gid else "a cell the student added"
        lines += [f"{where}, line {line}: {what}" for line, what in findings_in(cell.source)]
    return lines


def review_problem(findings: list[str], shown: int = 8) -> str:
    """The problem a flagged submission carries, for the instructor's review."""
    more = f"; and {len(findings) - shown} more" if len(findings) > shown else ""
    return ("for review: the notebook's own code reaches into the grading or the interpreter, which an honest "
            "answer has no need to do (it could have recorded checks it did not earn): "
            + "; ".join(findings[:shown]) + more)
