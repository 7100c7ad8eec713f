"""Runs inside a submission's sandbox: execute one notebook, report what happened.

Started by :mod:`autograder.execute` as ``python -m autograder.runner WORKDIR`` with the
sandbox's limits already applied. Reads ``WORKDIR/job.json``; everything that matters
travels through files the grader opened and passed down as file descriptors (listed in
``job.json``), which the notebook's kernel, a child of the runner, never gets: the
notebook to run (with its hidden tests, never written where the kernel could read it), the
executed notebook (after every cell), the records each cell made, and the final status.
The runner also makes itself undumpable, so that the kernel, running as the same user,
cannot attach to it or open those descriptors through ``/proc``.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

PR_SET_DUMPABLE = 4


def _not_dumpable() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: no /proc to protect
        pass


def run(workdir: Path, job: dict, fds: dict[str, int]) -> dict:
    # jsonschema (under nbformat) loads rfc3987_syntax when installed, which builds a
    # grammar at import: about 1 s of CPU per submission, to check "iri" string formats
    # that no notebook schema uses. The runner is started once per submission, so skip it.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import nbformat
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from autograder.checks import RECORDS_FILE
    from autograder.engine import ENGINE_NAME, notebook_bytes, register, write_whole
    from autograder.jobfiles import RecordCollector, read_descriptor

    register()
    logging.getLogger("papermill").setLevel(logging.ERROR)
    notebook = nbformat.reads(read_descriptor(fds["input"], os.fstat(fds["input"]).st_size).decode("utf-8"),
                              as_version=4)
    os.close(fds["input"])
    records = RecordCollector(workdir / "checks", fds["records"], RECORDS_FILE, budget=job["max_file_bytes"] // 2)
    status, message = "ok", ""
    start = time.monotonic()
    try:
        executed = papermill.execute_notebook(
            notebook,
            None,
            parameters=job["parameters"],
            engine_name=ENGINE_NAME,
            kernel_name="python3",
            progress_bar=False,
            cwd=str(workdir / "work"),
            execution_timeout=job["cell_timeout"],
            start_timeout=120,
            max_cell_output_bytes=job["max_cell_output_bytes"],
            max_output_bytes=job["max_output_bytes"],
            records=records,
            notebook_fd=fds["notebook"],
        )
        write_whole(fds["notebook"], notebook_bytes(executed))
    except PapermillExecutionError:
        pass  # errors inside cells are recorded in the output notebook and scored there
    except DeadKernelError as exc:
        status, message = "kernel_died", f"the kernel died ({exc}): a cell exited or crashed the kernel"
    except Exception as exc:  # anything else is the grader's problem to report, not to hide
        status, message = "runner_error", f"{type(exc).__name__}: {exc}"
    return {"status": status, "message": message, "seconds": time.monotonic() - start, "tampered": records.tampered}


def main() -> None:
    _not_dumpable()
    # PID 1 of a namespace gets only signals it handles, and Python handles SIGINT: the
    # notebook's code could stop the runner with one. A handler (not SIG_IGN, which the
    # kernel would inherit and then ignore the interrupts that end a cell at its timeout).
    signal.signal(signal.SIGINT, lambda *_: None)
    workdir = Path(sys.argv[1])
    job = json.loads((workdir / "job.json").read_text())
    fds = {name: int(fd) for name, fd in job["fds"].items()}
    for fd in fds.values():
        os.set_inheritable(fd, False)  # the kernel and anything else started here never get them
    from autograder.engine import write_whole

    write_whole(fds["status"], json.dumps(run(workdir, job, fds)).encode())


if __name__ == "__main__":
    main()
