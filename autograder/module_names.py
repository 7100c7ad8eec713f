"""Which names in a notebook's code stand for a module, for the scan in step 2b
(:mod:`autograder.tamper`): ``T`` after ``import torch as T`` or ``T = torch``, and ``m``
after ``for m in [torch, np]``, ``mods = [torch]``, ``def patch(m): ...; patch(torch)``.

Read from the code's text, flow-insensitively (a name bound to a module anywhere counts
everywhere), so that patching a module under another name is found. What a module merely
provides is not the module: ``torch.tanh``, ``np.nan`` and ``torch.float32`` are values,
found so by looking the attribute up in the installed package (only in the guarded
packages, imported by their fixed names, never by a name the notebook wrote); ``torch.nn``
and ``torch.testing`` are followed, and so is ``torch.Tensor`` (a class whose methods can be
patched) where it is renamed, though not through containers, loops and calls, where classes
are ordinary values (``for layer in [nn.Linear, nn.Conv2d]``).
"""

from __future__ import annotations

import ast
import bisect
import functools
import importlib
import types
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# Modules whose attributes a submission must not replace.
GUARDED_MODULES = frozenset({"torch", "numpy", "math", "builtins", "autograder", "sys", "os", "functools",
                             "operator", "json", "random", "io", "pathlib", "importlib", "types"})
# What the course's setup cells import: torch as torch, nn and F, numpy as np, and math.
SETUP_PATHS = {"torch": "torch", "nn": "torch.nn", "F": "torch.nn.functional", "np": "numpy", "math": "math"}
# Calls whose result holds (some of) their positional arguments: list([torch]), max(torch, np).
PASS_THROUGH_CALLS = frozenset({"list", "tuple", "set", "frozenset", "dict", "iter", "next", "reversed", "sorted",
                                "enumerate", "zip", "min", "max"})
CONTAINER_READS = frozenset({"values", "items", "keys", "get", "pop", "popitem", "copy", "setdefault"})
CONTAINER_WRITES = frozenset({"append", "extend", "insert", "add", "update", "setdefault", "appendleft"})
Function = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


def root_of(node: ast.AST) -> ast.AST:
    """The name (or other expression) that ``a.b[c](d).e`` starts from: ``a``."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: int, np.float32, torch.dtype cannot be patched


@functools.cache
def kind_of(path: str) -> str | None:
    """What the dotted ``path`` is: ``"module"`` (``torch.nn.functional``; also anything that
    cannot be looked up), ``"class"`` (one whose methods can be patched: ``torch.Tensor``),
    or None, a value (``np.nan``, ``torch.float32``, ``F.relu``, ``np.float32``)."""
    top, *attributes = path.split(".")
    if top not in GUARDED_MODULES:
        return "module"
    try:
        found = importlib.import_module(top)
        for attribute in attributes:
            found = getattr(found, attribute)
    except Exception:  # noqa: BLE001 - not there (or broken): keep following it
        return "module"
    if isinstance(found, types.ModuleType):
        return "module"
    return "class" if isinstance(found, type) and not found.__flags__ & IMMUTABLE_TYPE else None


@dataclass
class ModuleNames:
    """Local names that stand for a module: ``modules`` maps each to its top-level module.
    A name is that module (``import numpy as np``, ``T = torch``; ``paths`` has its dotted
    path) or, if it is in ``held``, can be or hold it: a loop variable over ``[torch, np]``,
    a container a module was put in, a parameter of a function the notebook calls with one."""

    modules: dict[str, str] = field(default_factory=lambda: {n: p.split(".")[0] for n, p in SETUP_PATHS.items()})
    paths: dict[str, str] = field(default_factory=lambda: dict(SETUP_PATHS))
    held: set[str] = field(default_factory=set)
    returning: dict[str, str] = field(default_factory=dict)  # functions that can return a module: def get(): return torch
    classes: set[str] = field(default_factory=set)  # names of classes (T = torch.Tensor), not followed further

    def copy(self) -> ModuleNames:
        return ModuleNames(dict(self.modules), dict(self.paths), set(self.held), dict(self.returning),
                           set(self.classes))

    def is_module(self, name: str) -> bool:
        return name in self.modules and name not in self.held

    def path_of(self, node: ast.AST) -> str | None:
        """``torch.nn.functional`` for ``F`` or ``nn.functional``: the dotted path of an
        attribute chain that starts from a name that is a module, else None."""
        attributes = []
        while isinstance(node, ast.Attribute):
            attributes.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and self.is_module(node.id) and node.id in self.paths:
            return ".".join([self.paths[node.id], *reversed(attributes)])
        return None

    def module_in(self, value: ast.AST) -> str | None:
        """The module that ``value`` can be or hold, if any."""
        if isinstance(value, ast.Name):
            return None if value.id in self.classes else self.modules.get(value.id)
        if isinstance(value, ast.Attribute) and (path := self.path_of(value)) is not None:
            # a class is followed where it is renamed (T = torch.Tensor), not through containers,
            # loops and calls, where classes are ordinary values (for m in [nn.Linear, nn.Conv2d])
            return path.split(".")[0] if kind_of(path) == "module" else None
        if isinstance(value, ast.Attribute):
            while isinstance(value, ast.Attribute):  # to the bottom of the chain at once
                value = value.value
            return self.module_in(value)  # an attribute of what a holder holds
        if isinstance(value, (ast.Subscript, ast.Starred, ast.NamedExpr)):
            return self.module_in(value.value)  # mods[0]
        parts: list[ast.AST] = []
        if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
            parts = value.elts
        elif isinstance(value, ast.Dict):
            parts = [*filter(None, value.keys), *value.values]
        elif isinstance(value, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            parts = [value.elt]
        elif isinstance(value, ast.DictComp):
            parts = [value.key, value.value]
        elif isinstance(value, ast.IfExp):
            parts = [value.body, value.orelse]
        elif isinstance(value, ast.BoolOp):
            parts = value.values
        elif isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Add, ast.Mult)):  # [torch] * 2, [] + [torch]
            parts = [value.left, value.right]
        elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in self.returning:
            return self.returning[value.func.id]  # get(), where def get(): return torch
        elif isinstance(value, ast.Call):
            parts = self._call_parts(value)
        return next(filter(None, map(self.module_in, parts)), None)

    def _call_parts(self, call: ast.Call) -> list[ast.AST]:
        """What a call's result can hold, of what the call is given."""
        func, arguments = call.func, call.args
        if isinstance(func, ast.Lambda):  # (lambda: torch)()
            return [func.body]
        if isinstance(func, ast.Name) and func.id == "getattr" and arguments:
            name = arguments[1] if len(arguments) > 1 else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str):  # getattr(torch, "testing")
                return [ast.Attribute(value=arguments[0], attr=name.value, ctx=ast.Load())]
            return arguments[:1]
        if isinstance(func, ast.Name) and func.id == "filter":
            return arguments[1:]
        if isinstance(func, ast.Name) and func.id in PASS_THROUGH_CALLS:
            return [*arguments, *(k.value for k in call.keywords if func.id == "dict")]
        if isinstance(func, ast.Attribute) and func.attr in CONTAINER_READS and not self.is_module_like(func.value):
            return [func.value]  # mods.values(), {"t": torch}.get("t"); not np.copy(x)
        return []

    def is_module_like(self, node: ast.AST) -> bool:
        """``np`` or ``np.random``: a name that is a module, or a path under one."""
        return isinstance(node, ast.Name) and self.is_module(node.id) or self.path_of(node) is not None

    def define(self, names: list[str], path: str, is_class: bool = False) -> None:
        """``names`` are now the module (or class) at ``path``: an import or a rename."""
        for name in names:
            self.modules[name], self.paths[name] = path.split(".")[0], path
            self.held.discard(name)
            if is_class:
                self.classes.add(name)

    def bind(self, names: list[str], value: ast.AST, rename: bool = False) -> list[str]:
        """Those of ``names`` that newly stand for a module, taken from ``value``; a rename
        (``T = torch``, ``F = torch.nn.functional``) makes a name that module, anything else a
        holder of it."""
        if all(name in self.modules for name in names):
            return []
        path = None
        if rename and isinstance(value, ast.Name) and self.is_module(value.id):
            path = self.paths.get(value.id)
        elif rename and isinstance(value, ast.Attribute) and (path := self.path_of(value)) and not kind_of(path):
            return []  # act = torch.tanh
        module = path.split(".")[0] if path else self.module_in(value)
        if module is None:
            return []
        new = [name for name in names if name not in self.modules]
        if path is not None:
            self.define(new, path, kind_of(path) == "class")
        else:
            self.modules.update(dict.fromkeys(new, module))
            self.held.update(new)
        return new


def _imported_from(module: str, alias: ast.alias) -> list[tuple[str, str]]:
    """``(name bound, its path)`` for the modules and classes that ``from module import ...``
    binds; ``*`` binds every public one of a guarded module."""
    if alias.name != "*":
        path = f"{module}.{alias.name}"
        return [(alias.asname or alias.name, path)] if kind_of(path) else []
    if module not in GUARDED_MODULES:  # a guarded package itself, never a module the notebook names
        return []
    try:
        public = getattr(importlib.import_module(module), "__all__", None)
    except Exception:  # noqa: BLE001 - the kernel could not import it either
        return []
    return [(name, f"{module}.{name}") for name in public or () if isinstance(name, str)
            and kind_of(f"{module}.{name}")]


def _target_names(target: ast.AST) -> list[str]:
    """Names a target binds (``a, *b``), and the container ``d`` in ``d["k"] = ...``.
    An attribute target (``self.act = torch.tanh``, ``self.d["k"] = ...``) binds no name."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    if isinstance(target, ast.Subscript):
        return _target_names(target.value) if isinstance(target.value, (ast.Name, ast.Subscript)) else []
    return []


def _assignments(target: ast.AST, value: ast.AST) -> list[tuple[list[str], ast.AST, bool]]:
    """``(names, value, is a rename)`` for one assignment; ``a, b = x, torch`` pairs the
    elements, so that ``a`` takes nothing from ``torch``."""
    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
            and len(target.elts) == len(value.elts) \
            and not any(isinstance(e, ast.Starred) for e in [*target.elts, *value.elts]):
        return [pair for t, v in zip(target.elts, value.elts, strict=True) for pair in _assignments(t, v)]
    return [(_target_names(target), value, isinstance(target, ast.Name))]


def _loop_bindings(target: ast.AST, iterable: ast.AST) -> list[tuple[list[str], ast.AST, bool]]:
    """``for a, b in zip(x, y)`` binds ``a`` from ``x`` and ``b`` from ``y``; ``for i, m in
    enumerate(xs)``, ``m`` from ``xs``; any other loop, every name from the whole iterable."""
    if isinstance(target, ast.Tuple) and isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) \
            and not iterable.keywords and not any(isinstance(a, ast.Starred) for a in iterable.args):
        name, arguments = iterable.func.id, iterable.args
        if name == "zip" and len(arguments) == len(target.elts):
            return [binding for t, a in zip(target.elts, arguments, strict=True) for binding in _loop_bindings(t, a)]
        if name == "enumerate" and len(arguments) == 1 and len(target.elts) == 2:
            return _loop_bindings(target.elts[1], arguments[0])
    return [(_target_names(target), iterable, False)]


def _parameters(function: Function) -> list[str]:
    arguments = function.args
    extra = [a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None]
    return [a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]] + extra


def _returned(function: Function) -> list[ast.AST]:
    """What ``function`` can return or yield (with what functions nested in it return: conservative)."""
    if isinstance(function, ast.Lambda):
        return [function.body]
    return [node.value for node in ast.walk(function)
            if isinstance(node, (ast.Return, ast.Yield, ast.YieldFrom)) and node.value is not None]


class _Parameters:
    """The parameters an argument of a call can reach, in any of a name's definitions:
    built once per name, in time linear in the definitions (a name defined thousands of
    times, each called thousands of times, stays cheap to read)."""

    def __init__(self, functions: list[Function]) -> None:
        self.at: dict[int, set[str]] = {}  # position -> the parameters there
        self.keywords: set[str] = set()
        self.extra: set[str] = set()  # **kwargs parameters
        varargs: dict[int, set[str]] = {}  # number of positional parameters -> *args parameters
        for function in functions:
            positional = [a.arg for a in [*function.args.posonlyargs, *function.args.args]]
            for index, name in enumerate(positional):
                self.at.setdefault(index, set()).add(name)
            self.keywords.update(_parameters(function))
            if function.args.vararg:
                varargs.setdefault(len(positional), set()).add(function.args.vararg.arg)
            if function.args.kwarg:
                self.extra.add(function.args.kwarg.arg)
        self.counts = sorted(varargs)  # *args reaches an argument at or after its function's count
        self.varargs: list[set[str]] = []  # the *args parameters reached from each count on
        for count in self.counts:
            self.varargs.append((self.varargs[-1] if self.varargs else set()) | varargs[count])

    def reached(self, position: int | str | None) -> list[str]:
        """By position, by keyword, or (None: ``*args`` or ``**kwargs`` passed on) any."""
        if position is None:
            return sorted(self.keywords | self.extra)
        if isinstance(position, str):
            return [position] if position in self.keywords else sorted(self.extra)
        index = bisect.bisect_right(self.counts, position) - 1
        return sorted(self.at.get(position, set()) | (self.varargs[index] if index >= 0 else set()))


def _bind_parameters(names: ModuleNames, parameters: _Parameters, position: int | str | None,
                     argument: ast.AST) -> list[str]:
    if names.module_in(argument) is None:  # the usual case: find the parameters only when needed
        return []
    return names.bind(parameters.reached(position), argument)


def _bind_return(names: ModuleNames, function: str, returned: list[ast.AST]) -> list[str]:
    """``[function]`` if it newly returns a module."""
    if function in names.returning:
        return []
    module = next(filter(None, map(names.module_in, returned)), None)
    if module is None:
        return []
    names.returning[function] = module
    return [function]


def _mentioned(*values: ast.AST) -> set[str]:
    return {node.id for value in values for node in ast.walk(value) if isinstance(node, ast.Name)}


def _called(node: ast.Call, functions: dict[str, list[Function]]) -> tuple[str | int, list[Function], list, list] | None:
    """``(the callee's name or lambda's id, functions called, arguments, keywords)``, or None
    where the notebook defines no function called: ``map(patch, [torch])`` calls ``patch``."""
    callee, arguments, keywords = node.func, node.args, node.keywords
    if isinstance(callee, ast.Name) and callee.id in ("map", "filter") and arguments:
        callee, arguments, keywords = arguments[0], arguments[1:], []
    if isinstance(callee, ast.Lambda):
        return id(callee), [callee], arguments, keywords
    if isinstance(callee, ast.Name) and callee.id in functions:
        return callee.id, functions[callee.id], arguments, keywords
    return None


def module_names(tree: ast.AST, known: ModuleNames | None = None) -> ModuleNames:
    """The names in ``tree`` that stand for a module, starting from ``known`` (or the setup
    cells' imports), followed through renames, containers, loops and calls until nothing
    changes."""
    names = known.copy() if known else ModuleNames()
    methods = {id(f) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for f in c.body}
    bindings: list[tuple[list[str], ast.AST, bool]] = []  # (names bound, the value they take a module from, a rename)
    functions: dict[str, list[Function]] = {}
    calls: list[ast.Call] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                bound = a.asname or a.name.split(".")[0]
                names.define([bound], a.name if a.asname else bound)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                for bound, path in _imported_from(node.module, a):  # not values: from math import pi
                    names.define([bound], path, kind_of(path) == "class")
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bindings += [binding for target in targets for binding in _assignments(target, node.value)]
            for target in targets if isinstance(node.value, ast.Lambda) else []:  # patch = lambda m: ...
                if isinstance(target, ast.Name):
                    functions.setdefault(target.id, []).append(node.value)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            bindings += _loop_bindings(node.target, node.iter)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            bindings.append((_target_names(node.optional_vars), node.context_expr, False))
        elif isinstance(node, ast.Match):
            bindings += [([n.name], node.subject, False) for case in node.cases for n in ast.walk(case.pattern)
                         if isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and id(node) not in methods:
            functions.setdefault(node.name, []).append(node)
        if isinstance(node, ast.Call):
            calls.append(node)
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in CONTAINER_WRITES and isinstance(func.value, ast.Name) \
                    and not names.is_module(func.value.id):  # mods.append(torch)
                given = ast.Tuple(elts=[*node.args, *(k.value for k in node.keywords)], ctx=ast.Load())
                bindings.append(([func.value.id], given, False))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):  # def f(m=torch)
            positional = [*node.args.posonlyargs, *node.args.args]  # the defaults belong to the last ones
            bindings += [([a.arg], d, False) for a, d in zip(positional[::-1], node.args.defaults[::-1], strict=False)]
            bindings += [([a.arg], d, False) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)
                         if d is not None]
    # Each rule: (the names its value mentions, what it binds when that value holds a module).
    # A rule runs once, then again each time a name it mentions newly stands for a module, so
    # a long chain of renames costs its length, not its square.
    rules: list[tuple[set[str], Callable[[], list[str]]]] = [
        (_mentioned(value), functools.partial(names.bind, targets, value, rename))
        for targets, value, rename in bindings]
    signatures: dict[str | int, _Parameters] = {}  # callee -> the parameters of its definitions
    for call in calls:
        if (found := _called(call, functions)) is None:
            continue
        callee, called, arguments, keywords = found
        if callee not in signatures:
            signatures[callee] = _Parameters(called)
        given: list[tuple[int | str | None, ast.AST]] = [
            (None if isinstance(a, ast.Starred) else i, a) for i, a in enumerate(arguments)]
        given += [(k.arg, k.value) for k in keywords]
        rules += [(_mentioned(argument), functools.partial(_bind_parameters, names, signatures[callee], position,
                                                           argument)) for position, argument in given]
    for name, defined in functions.items():
        returned = [value for function in defined for value in _returned(function)]
        rules.append((_mentioned(*returned), functools.partial(_bind_return, names, name, returned)))
    waiting: dict[str, list[int]] = {}
    for index, (mentioned, _) in enumerate(rules):
        for name in mentioned:
            waiting.setdefault(name, []).append(index)
    queue = deque(range(len(rules)))
    while queue:
        for name in rules[queue.popleft()][1]():
            queue.extend(waiting.get(name, ()))
    return names
