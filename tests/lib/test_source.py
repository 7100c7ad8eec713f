"""lib.source: pages show library code exactly as it is in the module."""

from __future__ import annotations

import inspect

import pytest

import lib.data
import lib.softmax
from lib.source import SourceCode, show_source


@pytest.mark.parametrize(
    "obj",
    [lib.softmax.softmax, lib.softmax.Accumulator, lib.softmax.Accumulator.add, lib.data.with_fallback,
     lib.softmax.TrainHistory],
    ids=lambda obj: obj.__qualname__,
)
def test_show_source_is_the_module_source(obj):
    shown = show_source(obj)
    assert isinstance(shown, SourceCode)
    assert shown.text == inspect.getsource(obj).rstrip()
    assert shown.text in inspect.getsource(inspect.getmodule(obj))
    assert shown.origin == f"{obj.__module__}.{obj.__qualname__}"
    assert repr(shown) == shown.text


def test_show_source_renders_markdown():
    shown = show_source(lib.softmax.softmax)
    md = shown._repr_markdown_()
    assert md == (
        f"```python\n{inspect.getsource(lib.softmax.softmax).rstrip()}\n```\n"
        "<small>from <code>lib.softmax.softmax</code></small>"
    )
    assert md.count("```") == 2


def test_show_source_joins_several_objects():
    shown = show_source(lib.softmax.softmax, lib.softmax.log_softmax)
    parts = [inspect.getsource(f).rstrip() for f in (lib.softmax.softmax, lib.softmax.log_softmax)]
    assert shown.text == "\n\n".join(parts)
    assert shown.origin == "lib.softmax.softmax, lib.softmax.log_softmax"


def test_show_source_of_a_module():
    shown = show_source(lib.source)
    assert shown.text == inspect.getsource(lib.source).rstrip()
    assert shown.origin == "lib.source"


def test_show_source_errors():
    with pytest.raises(ValueError, match="at least one function or class"):
        show_source()
    with pytest.raises(ValueError, match="cannot read the source of <built-in function len>"):
        show_source(len)
    with pytest.raises(ValueError, match="cannot read the source of 3"):
        show_source(3)
