"""A papermill engine for grading: every cell runs, outputs are capped.

papermill's stock engine stops at the first failing cell. Grading needs every test to run
(a broken answer must not cost the points of later, independent questions), a timed-out
cell interrupted rather than the notebook abandoned, and outputs bounded so that a cell
printing gigabytes cannot exhaust the grader's memory.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from nbformat import NotebookNode
from nbformat.v4 import new_output
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from papermill.utils import merge_kwargs, remove_args
from traitlets import Int

ENGINE_NAME = "autograder"


class GradingClient(PapermillNotebookClient):
    """nbclient with per-cell and per-notebook output budgets."""

    max_cell_output_bytes = Int(2**20).tag(config=True)
    max_output_bytes = Int(16 * 2**20).tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cell_bytes: dict[int, int] = {}
        self._total_bytes = 0
        self._truncated: set[int] = set()

    def execute_cell(self, cell: NotebookNode, cell_index: int, *args: Any, **kwargs: Any):
        # Note how many check() records exist once each cell is done, so that a trusted
        # (reference) run can attribute every record to the test cell that made it.
        try:
            return super().execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            cell.metadata["autograder"] = {"records_end": _count_records()}

    def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int):
        size = len(str(msg.get("content", "")))
        used = self._cell_bytes.get(cell_index, 0)
        if used + size > self.max_cell_output_bytes or self._total_bytes + size > self.max_output_bytes:
            if cell_index not in self._truncated:
                self._truncated.add(cell_index)
                outs.append(new_output("stream", name="stderr", text=(
                    f"[autograder] output of this cell exceeded its budget "
                    f"({self.max_cell_output_bytes} bytes per cell, {self.max_output_bytes} per "
                    "notebook); the rest was dropped\n"
                )))
            return None
        self._cell_bytes[cell_index] = used + size
        self._total_bytes += size
        return super().output(outs, msg, display_id, cell_index)


def _count_records() -> int:
    from autograder.checks import ENV_VAR, RECORDS_FILE

    directory = os.environ.get(ENV_VAR)
    path = Path(directory) / RECORDS_FILE if directory else None
    if path is None or not path.is_file():
        return 0
    with open(path, "rb") as f:
        return sum(1 for _ in f)


class GradingEngine(NBClientEngine):
    """papermill engine that runs :class:`GradingClient` with errors allowed."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                 stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
        kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            kwargs,
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
            allow_errors=True,
            interrupt_on_timeout=True,
            # A cell printing hundreds of megabytes finishes before its output is drained:
            # wait for the rest instead of failing the notebook (extra output is dropped anyway).
            iopub_timeout=60,
            raise_on_iopub_timeout=False,
            # Nothing is left to save once the last cell ran: a graceful shutdown only
            # waits (about a second per notebook) for a kernel that is killed anyway.
            shutdown_kernel="immediate",
        )
        nb_man.save = functools.partial(_save_unvalidated, nb_man)
        return GradingClient(nb_man, **final_kwargs).execute()


def _save_unvalidated(nb_man: NotebookExecutionManager, **kwargs: Any) -> None:
    """papermill's save without its cost: papermill validates the whole notebook against
    its schema and pretty-prints it (Python's slow JSON encoder) at the start and end of
    every cell, about 0.7 s of CPU per notebook. The grader parses the file anyway."""
    if "nb" in kwargs:
        nb_man.nb = kwargs["nb"]
    if nb_man.output_path:
        Path(nb_man.output_path).write_text(json.dumps(nb_man.nb, ensure_ascii=False, default=str), encoding="utf-8")


def register() -> None:
    papermill_engines.register(ENGINE_NAME, GradingEngine)
