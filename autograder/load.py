"""Step 1: read a submitted file into a notebook, or say exactly why it cannot be read."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nbformat

from autograder.config import Limits


class SubmissionError(ValueError):
    """The submitted file is not a gradeable notebook; the message says why."""


def read_submission(path: Path, limits: Limits) -> tuple[nbformat.NotebookNode, list[str]]:
    """Return the notebook (upgraded to nbformat 4) and notes about it; raise SubmissionError."""
    notes: list[str] = []
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SubmissionError(f"the file cannot be read: {exc.strerror}") from exc
    if path.is_dir():
        raise SubmissionError("it is a folder, not a notebook file")
    if size == 0:
        raise SubmissionError("the file is empty")
    if size > limits.max_notebook_bytes:
        raise SubmissionError(
            f"the file is {size / 2**20:.0f} MiB, over the {limits.max_notebook_bytes / 2**20:.0f} MiB "
            "limit for a notebook (clear large outputs before submitting); it was not read"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SubmissionError(f"the file cannot be read: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionError("the file is not UTF-8 text: it is not a notebook (or it is corrupted)") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SubmissionError(
            f"the file is not valid JSON (line {exc.lineno}, column {exc.colno}): it is corrupted or not a notebook"
        ) from exc
    if not isinstance(data, dict) or not ("cells" in data or "worksheets" in data) or "nbformat" not in data:
        raise SubmissionError("the file is JSON but not a Jupyter notebook (no cells or nbformat version)")
    version = data.get("nbformat")
    if not isinstance(version, int) or version < 3 or version > 4:
        raise SubmissionError(f"nbformat version {version!r} is not supported (3 and 4 are)")
    try:
        with warnings.catch_warnings():  # duplicate cell ids etc. are repaired, not fatal
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several types for malformed documents
        raise SubmissionError(f"the notebook is malformed and cannot be upgraded/read: {exc}") from exc
    if version < 4:
        notes.append(f"the notebook was saved in the old nbformat {version}; it was upgraded to 4 for grading")
    if not isinstance(nb.get("cells"), list):
        raise SubmissionError("the notebook has no list of cells")
    return nb, notes
