"""Which names in a notebook's code stand for a module, for the scan in step 2b
(:mod:`autograder.tamper`): ``T`` after ``import torch as T`` or ``T = torch``, and ``m``
after ``for m in [torch, np]``, ``mods = [torch]``, ``def patch(m): ...; patch(torch)``.

Read from the code's text, flow-insensitively (a name bound to a module anywhere counts
everywhere) and conservatively: what matters is that patching a module under another name
is found, and that ordinary code (``self.act = torch.tanh``, ``for p in params``) is not.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

# The names the course's setup cells import: torch as torch, nn and F, numpy as np.
SETUP_ALIASES = {"torch": "torch", "nn": "torch", "F": "torch", "np": "numpy", "math": "math"}

# Calls whose result holds what they are given: ``list([torch])``, ``getattr(torch, "testing")``.
PASS_THROUGH_CALLS = frozenset({"list", "tuple", "set", "frozenset", "dict", "iter", "next", "reversed", "sorted",
                                "enumerate", "zip", "filter", "getattr"})
CONTAINER_METHODS = frozenset({"values", "items", "keys", "get", "pop", "popitem", "copy", "setdefault"})


def root_of(node: ast.AST) -> ast.AST:
    """The name (or other expression) that ``a.b[c](d).e`` starts from: ``a``."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


@dataclass
class ModuleNames:
    """Local names that stand for a module: ``modules`` maps each to its top-level module.
    A name is that module (``import numpy as np``, ``T = torch``) or, if it is in ``held``,
    can be or hold it: a loop variable over ``[torch, np]``, a container a module was put
    in, a parameter of a function the notebook calls with a module."""

    modules: dict[str, str] = field(default_factory=lambda: dict(SETUP_ALIASES))
    held: set[str] = field(default_factory=set)
    returning: dict[str, str] = field(default_factory=dict)  # functions that can return a module: def get(): return torch

    def is_module(self, name: str) -> bool:
        return name in self.modules and name not in self.held

    def module_in(self, value: ast.AST) -> str | None:
        """The module that ``value`` can be or hold, if any."""
        if isinstance(value, ast.Name):
            return self.modules.get(value.id)
        if isinstance(value, (ast.Attribute, ast.Subscript, ast.Starred, ast.NamedExpr)):
            # torch.nn is a module and torch.Tensor a class whose methods can be patched;
            # a name bound to another attribute (act = torch.tanh) is followed the same way
            return self.module_in(value.value)
        if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
            parts = value.elts
        elif isinstance(value, ast.Dict):
            parts = [*filter(None, value.keys), *value.values]
        elif isinstance(value, ast.IfExp):
            parts = [value.body, value.orelse]
        elif isinstance(value, ast.BoolOp):
            parts = value.values
        elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in self.returning:
            return self.returning[value.func.id]
        elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in PASS_THROUGH_CALLS:
            parts = [*value.args, *(k.value for k in value.keywords)]
        elif isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) \
                and value.func.attr in CONTAINER_METHODS and isinstance(value.func.value, ast.Name) \
                and not self.is_module(value.func.value.id):  # mods.values(), not np.copy(x)
            parts = [value.func.value]
        else:
            return None
        return next(filter(None, map(self.module_in, parts)), None)

    def bind(self, names: list[str], value: ast.AST, rename: bool = False) -> list[str]:
        """Those of ``names`` that newly stand for a module, taken from ``value``; a rename
        (``T = torch``) makes a name that module, anything else a holder of it."""
        if all(name in self.modules for name in names):
            return []
        module = self.module_in(value)
        is_module = rename and isinstance(value, ast.Name) and self.is_module(value.id)
        new = [name for name in names if module is not None and name not in self.modules]
        self.modules.update(dict.fromkeys(new, module))
        self.held.update(new if not is_module else ())
        return new


def _target_names(target: ast.AST) -> list[str]:
    """Names a target binds (``a, *b``), and the container ``d`` in ``d["k"] = ...``.
    An attribute target (``self.act = torch.tanh``) binds no name."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    if isinstance(target, ast.Subscript):
        root = root_of(target)
        return [root.id] if isinstance(root, ast.Name) else []
    return []


Function = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


def _parameters(function: Function) -> list[str]:
    arguments = function.args
    return [a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]]


def _returned(function: Function) -> list[ast.AST]:
    """What ``function`` can return (with the returns of functions nested in it: conservative)."""
    if isinstance(function, ast.Lambda):
        return [function.body]
    return [node.value for node in ast.walk(function) if isinstance(node, ast.Return) and node.value]


def _bind_call(names: ModuleNames, function: Function, arguments: list[ast.AST], keywords: list[ast.keyword]) -> list[str]:
    """Bind the parameters of ``function`` that a call passes a module to; the new ones."""
    positional = [a.arg for a in [*function.args.posonlyargs, *function.args.args]]
    new = []
    for position, argument in enumerate(arguments):
        if isinstance(argument, ast.Starred):  # f(*mods): any parameter can take a module
            new += names.bind(_parameters(function), argument)
        elif position < len(positional):
            new += names.bind([positional[position]], argument)
        elif function.args.vararg:
            new += names.bind([function.args.vararg.arg], argument)
    for keyword in keywords:
        if keyword.arg in _parameters(function):
            new += names.bind([keyword.arg], keyword.value)
        else:  # **kwargs, or f(**mods) into any parameter
            new += names.bind([function.args.kwarg.arg] if function.args.kwarg else _parameters(function),
                              keyword.value)
    return new


def _bind_return(names: ModuleNames, function: str, returned: list[ast.AST]) -> list[str]:
    """``[function]`` if it newly returns a module."""
    module = next(filter(None, map(names.module_in, returned)), None)
    if module is None or function in names.returning:
        return []
    names.returning[function] = module
    return [function]


def _mentioned(*values: ast.AST) -> set[str]:
    return {node.id for value in values for node in ast.walk(value) if isinstance(node, ast.Name)}


def module_names(tree: ast.AST, known: ModuleNames | None = None) -> ModuleNames:
    """The names in ``tree`` that stand for a module, starting from ``known`` (or the setup
    cells' imports), followed through renames, containers, loops and calls until nothing
    changes."""
    names = ModuleNames(dict(known.modules), set(known.held), dict(known.returning)) if known else ModuleNames()
    bindings: list[tuple[list[str], ast.AST, bool]] = []  # (names bound, the value they take a module from, a rename)
    functions: dict[str, list[Function]] = {}
    calls: list[tuple[ast.AST, list[ast.AST], list[ast.keyword]]] = []  # (callee, arguments, keywords)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.modules.update({a.asname or a.name.split(".")[0]: a.name.split(".")[0] for a in node.names})
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.modules.update({a.asname or a.name: node.module.split(".")[0] for a in node.names})
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bindings += [(_target_names(t), node.value, isinstance(t, ast.Name)) for t in targets]
            for target in targets if isinstance(node.value, ast.Lambda) else []:  # patch = lambda m: ...
                if isinstance(target, ast.Name):
                    functions.setdefault(target.id, []).append(node.value)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            bindings.append((_target_names(node.target), node.iter, False))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "map" and node.args:
            calls.append((node.args[0], node.args[1:], []))  # map(patch, [torch]) calls patch(torch)
        elif isinstance(node, ast.Call):
            calls.append((node.func, node.args, node.keywords))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):  # def f(m=torch)
            positional = [*node.args.posonlyargs, *node.args.args]  # the defaults belong to the last ones
            bindings += [([a.arg], d, False) for a, d in zip(positional[::-1], node.args.defaults[::-1], strict=False)]
            bindings += [([a.arg], d, False) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True) if d]
    # Each rule: (the names its values mention, what it binds when one of those is a module).
    # A rule runs once, then again each time a name it mentions newly stands for a module,
    # so a long chain of renames costs its length, not its square.
    rules: list[tuple[set[str], Callable[[], list[str]]]] = [
        (_mentioned(value), partial(names.bind, targets, value, rename)) for targets, value, rename in bindings]
    for callee, arguments, keywords in calls:
        called = [callee] if isinstance(callee, ast.Lambda) else \
            functions.get(callee.id, []) if isinstance(callee, ast.Name) else []
        rules += [(_mentioned(*arguments, *(k.value for k in keywords)),
                   partial(_bind_call, names, function, arguments, keywords)) for function in called]
    for name, defined in functions.items():
        returned = [value for function in defined for value in _returned(function)]
        rules.append((_mentioned(*returned), partial(_bind_return, names, name, returned)))
    waiting: dict[str, list[int]] = {}
    for index, (mentioned, _) in enumerate(rules):
        for name in mentioned:
            waiting.setdefault(name, []).append(index)
    queue = deque(range(len(rules)))
    while queue:
        for name in rules[queue.popleft()][1]():
            queue.extend(waiting.get(name, ()))
    return names
