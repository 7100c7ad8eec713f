"""Show library code on a page (used by every chapter).

Pages never copy `lib` code: they display it with :func:`show_source`, which reads the
code from the installed module at build time, so the page and the library cannot drift.
"""

from __future__ import annotations

import inspect
from typing import Any


class SourceCode:
    """Source text that Jupyter and the book render as a highlighted Python block."""

    def __init__(self, text: str, origin: str) -> None:
        self.text = text
        self.origin = origin

    def _repr_markdown_(self) -> str:
        return f"```python\n{self.text.rstrip()}\n```\n<small>from <code>{self.origin}</code></small>"

    def __repr__(self) -> str:
        return self.text


def show_source(*objects: Any) -> SourceCode:
    """The source of functions or classes from `lib`, as one highlighted block.

    Introduced in: Softmax regression from scratch.
    """
    if not objects:
        raise ValueError("show_source needs at least one function or class")
    parts, origins = [], []
    for obj in objects:
        try:
            parts.append(inspect.getsource(obj))
        except (TypeError, OSError) as exc:
            raise ValueError(f"cannot read the source of {obj!r}: {exc}") from exc
        if inspect.ismodule(obj):
            origins.append(obj.__name__)  # a module has no __module__ or __qualname__
        else:
            origins.append(f"{obj.__module__}.{obj.__qualname__}")
    return SourceCode("\n\n".join(p.rstrip() for p in parts), ", ".join(origins))
