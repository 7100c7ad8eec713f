"""Runs inside a submission's sandbox: execute one notebook, write what happened.

Started by :mod:`autograder.execute` as ``python -m autograder.runner WORKDIR`` with the
sandbox's limits already applied. Reads ``WORKDIR/job.json`` and ``WORKDIR/input.ipynb``;
writes ``WORKDIR/output.ipynb`` (after every cell) and ``WORKDIR/status.json``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path


def run(workdir: Path) -> dict:
    # jsonschema (under nbformat) loads rfc3987_syntax when installed, which builds a
    # grammar at import: about 1 s of CPU per submission, to check "iri" string formats
    # that no notebook schema uses. The runner is started once per submission, so skip it.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from autograder.engine import ENGINE_NAME, register

    register()
    logging.getLogger("papermill").setLevel(logging.ERROR)
    job = json.loads((workdir / "job.json").read_text())
    status, message = "ok", ""
    start = time.monotonic()
    try:
        papermill.execute_notebook(
            str(workdir / "input.ipynb"),
            str(workdir / "output.ipynb"),
            parameters=job["parameters"],
            engine_name=ENGINE_NAME,
            kernel_name="python3",
            progress_bar=False,
            cwd=str(workdir / "work"),
            execution_timeout=job["cell_timeout"],
            start_timeout=120,
            max_cell_output_bytes=job["max_cell_output_bytes"],
            max_output_bytes=job["max_output_bytes"],
        )
    except PapermillExecutionError:
        pass  # errors inside cells are recorded in the output notebook and scored there
    except DeadKernelError as exc:
        status, message = "kernel_died", f"the kernel died ({exc}): a cell exited or crashed the kernel"
    except Exception as exc:  # anything else is the grader's problem to report, not to hide
        status, message = "runner_error", f"{type(exc).__name__}: {exc}"
    return {"status": status, "message": message, "seconds": time.monotonic() - start}


def main() -> None:
    workdir = Path(sys.argv[1])
    result = run(workdir)
    # Write beside, then rename: a symlink or FIFO the submission left at status.json is
    # replaced, never followed or blocked on.
    fd, temporary = tempfile.mkstemp(dir=workdir, prefix=".status-")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f)
    os.replace(temporary, workdir / "status.json")


if __name__ == "__main__":
    main()
