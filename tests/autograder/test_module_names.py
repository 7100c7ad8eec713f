"""Which names stand for a module (autograder.module_names), read from code's text."""

import ast

from autograder.module_names import ModuleNames, module_names


def names_in(source: str, known: ModuleNames | None = None) -> ModuleNames:
    return module_names(ast.parse(source), known)


def test_a_rename_is_the_module_and_a_container_or_loop_variable_holds_it():
    names = names_in("import numpy.testing as npt\nT = torch\nmods = [T, npt]\nfor m in mods:\n    pass")
    assert {n: names.modules[n] for n in ("npt", "T", "mods", "m")} == {
        "npt": "numpy", "T": "torch", "mods": "torch", "m": "torch"}
    assert names.held == {"mods", "m"}


def test_bindings_are_followed_whatever_order_they_are_written_in():
    """Flow-insensitive: the kernel may run cells (and calls) in another order than the text."""
    names = names_in("for m in mods:\n    pass\nmods = holder\nholder = [B]\nB = A\nA = np")
    assert [names.modules.get(n) for n in ("A", "B", "holder", "mods", "m")] == ["numpy"] * 5
    assert names.held == {"holder", "mods", "m"}


def test_parameters_take_what_calls_pass_positionally_by_keyword_and_as_defaults():
    names = names_in("def f(a, b, *rest, c=None, d=math, **more):\n    pass\n"
                     "f(1, torch, 2, np)\nf(0, 0, c=np, e=torch)")
    assert {n: names.modules.get(n) for n in ("a", "b", "rest", "c", "d", "more")} == {
        "a": None, "b": "torch", "rest": "numpy", "c": "numpy", "d": "math", "more": "torch"}


def test_what_a_function_returns_and_names_known_from_other_cells():
    known = names_in("import torch as T")
    names = names_in("def get():\n    def inner():\n        return 1\n    return T\nm = get()\nx = inner()", known)
    assert names.returning == {"get": "torch"}
    assert (names.modules.get("m"), names.modules.get("x")) == ("torch", None)


def test_values_made_from_a_module_are_not_the_module():
    names = names_in("x = torch.zeros(3)\ny = np.copy(x)\nnet = nn.Linear(2, 2)\nself.act = torch.tanh\n"
                     "params = [x, net.weight]\nfor p in params:\n    pass")
    assert not {"x", "y", "net", "self", "params", "p"} & set(names.modules)


def test_a_long_chain_of_renames_written_backwards_is_followed_to_its_end():
    """Each rule runs again only when a name it mentions changes (a chain of 5,000 took
    quadratic time with a loop over all rules until nothing changed)."""
    chain = "\n".join(f"a{i} = a{i + 1}" for i in range(5000)) + "\na5000 = [torch]"
    names = names_in(chain)
    assert names.modules["a0"] == "torch"
    assert len(names.held) == 5001


def test_what_a_module_provides_is_a_value_but_its_modules_and_classes_are_followed():
    names = names_in("a = np.nan\nb = torch.float32\nc = F.relu\nd = [torch.tanh]\ne = np.r_[1, 2]\n"
                     "T = torch.Tensor\nG = nn.functional\nfor t in [torch.testing]:\n    pass")
    assert not {"a", "b", "c", "d", "e"} & set(names.modules)
    assert (names.paths["T"], names.paths["G"], names.modules["t"]) == ("torch.Tensor", "torch.nn.functional", "torch")
    assert {"T", "G"}.isdisjoint(names.held)


def test_classes_are_followed_where_renamed_not_through_containers_and_values_are_not_imported_as_modules():
    names = names_in("from torch import Tensor, float32, testing\nfrom math import pi\nT = Tensor\n"
                     "for C in [Tensor, np.float32]:\n    pass\nfor m in [testing]:\n    pass")
    assert (names.paths["Tensor"], names.paths["T"], names.modules["m"]) == ("torch.Tensor", "torch.Tensor", "torch")
    assert not {"float32", "pi", "C"} & set(names.modules)


def test_a_name_defined_many_times_and_called_many_times_binds_every_definition():
    """Calls reach the parameters of every definition (the kernel may run any of them)."""
    source = "\n".join(f"def f(p{i}, *rest{i}):\n    pass" for i in range(300)) + "\n" + \
        "\n".join("f(x, y)" for _ in range(300)) + "\nf(1, torch)"
    names = names_in(source)
    assert {f"rest{i}" for i in range(300)} <= names.held
    assert not {f"p{i}" for i in range(300)} & set(names.modules)
