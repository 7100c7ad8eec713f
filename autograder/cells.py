"""nbgrader cell metadata, read the way nbgrader defines it (schema version 3)."""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode


def nbgrader_meta(cell: NotebookNode) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def grade_id(cell: NotebookNode) -> str | None:
    value = nbgrader_meta(cell).get("grade_id")
    return str(value) if value else None


def is_answer(cell: NotebookNode) -> bool:
    """A cell the student writes (code answer or written answer)."""
    return bool(nbgrader_meta(cell).get("solution"))


def is_graded(cell: NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("grade"))


def is_autograded_test(cell: NotebookNode) -> bool:
    """A code cell with points and no student answer: scored by the grader."""
    return cell.cell_type == "code" and is_graded(cell) and not is_answer(cell)


def is_given(cell: NotebookNode) -> bool:
    """Read-only code the assignment provides (loading data, a training run), no points."""
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(meta.get("locked")) and not meta.get("grade") and not meta.get("solution")


def is_manual(cell: NotebookNode) -> bool:
    """A graded answer cell: an instructor scores it by hand."""
    return is_graded(cell) and is_answer(cell)


def part_heading(cell: NotebookNode) -> str | None:
    """The title of a ``## ...`` markdown cell (a part of the assignment), else None.

    ``# ...`` is the notebook's own title, not a part.
    """
    first = cell.source.lstrip().splitlines()[0] if cell.cell_type == "markdown" and cell.source.strip() else ""
    return first.lstrip("#").strip() if first.startswith("##") else None


def points(cell: NotebookNode) -> float:
    try:
        return float(nbgrader_meta(cell).get("points", 0) or 0)
    except (TypeError, ValueError):
        return 0.0


def read_executed(text: str) -> NotebookNode:
    """Read a notebook papermill wrote (its injected-parameters cell repeats an id)."""
    import warnings

    import nbformat

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nbformat.reads(text, as_version=4)
