"""A papermill engine for grading: every cell runs, outputs are capped, records are kept.

papermill's stock engine stops at the first failing cell. Grading needs every test to run
(a broken answer must not cost the points of later, independent questions), a timed-out
cell interrupted rather than the notebook abandoned, and outputs bounded so that a cell
printing gigabytes cannot exhaust the grader's memory. After each cell the runner's
:class:`~autograder.jobfiles.RecordCollector` takes the records that cell made, and the
notebook so far is written to the grader's file: neither lives where the notebook's own
code could rewrite it.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from nbformat import NotebookNode
from nbformat.v4 import new_output
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from papermill.utils import merge_kwargs, remove_args
from traitlets import Any as AnyTrait
from traitlets import Int

ENGINE_NAME = "autograder"


class GradingClient(PapermillNotebookClient):
    """nbclient with per-cell and per-notebook output budgets."""

    max_cell_output_bytes = Int(2**20).tag(config=True)
    max_output_bytes = Int(16 * 2**20).tag(config=True)
    records = AnyTrait(None)  # a RecordCollector, or None outside grading

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cell_bytes: dict[int, int] = {}
        self._total_bytes = 0
        self._truncated: set[int] = set()

    def execute_cell(self, cell: NotebookNode, cell_index: int, *args: Any, **kwargs: Any):
        try:
            return super().execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            if self.records is not None:  # what this cell recorded is this cell's, whatever comes later
                self.records.collect(cell_index)

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
        notebook_fd = final_kwargs.pop("notebook_fd", None)
        nb_man.save = functools.partial(_save_unvalidated, nb_man, notebook_fd)
        return GradingClient(nb_man, **final_kwargs).execute()


def _save_unvalidated(nb_man: NotebookExecutionManager, fd: int | None, **kwargs: Any) -> None:
    """Write the notebook so far to ``fd`` (the grader's file), as papermill saves after each
    cell, without papermill's cost: it validates the whole notebook against its schema and
    pretty-prints it (Python's slow JSON encoder) at the start and end of every cell, about
    0.7 s of CPU per notebook. The grader parses the file anyway."""
    if "nb" in kwargs:
        nb_man.nb = kwargs["nb"]
    if fd is not None:
        write_whole(fd, notebook_bytes(nb_man.nb))


def notebook_bytes(nb: NotebookNode) -> bytes:
    """The notebook as JSON. papermill records its input path in the metadata, which for a
    notebook passed as an object is the whole notebook again: a name takes its place."""
    run = nb.metadata.get("papermill", {})
    if not isinstance(run.get("input_path"), str | None):
        run["input_path"] = "(the assembled notebook, passed by the grader)"
    return json.dumps(nb, ensure_ascii=False, default=str).encode()


def write_whole(fd: int, data: bytes) -> None:
    """Replace the content of the file open as ``fd``."""
    os.lseek(fd, 0, os.SEEK_SET)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.ftruncate(fd, len(data))


def register() -> None:
    papermill_engines.register(ENGINE_NAME, GradingEngine)
