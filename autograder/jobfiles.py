"""Files of a job, read without trusting them, and the records the runner keeps of them.

Everything in a job's directory belongs to the sandboxed user, so the submission can
replace, link or rewrite any of it at any time. Two readers use this module:

- the runner (inside the sandbox): after each cell, :class:`RecordCollector` takes the
  ``check()`` records that cell appended to ``checks/checks.jsonl``, with the arrays they
  name, and writes them, tagged with the cell's index, to a file the grader opened for it
  and the notebook cannot reach. What a later cell does to the records file or the arrays
  changes nothing already collected.
- the grader (root, outside): :func:`read_job_file` for the few files it still reads from
  the job's directory (the runner's log), never following links.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from autograder.checks import MAX_RECORD_NODES, json_nodes

MAX_RECORDS = 10_000
MAX_RECORD_BYTES = 256 * 2**20  # a job's records and their arrays together
# JSON objects and lists of all records of a job together (MAX_RECORD_NODES: of one): parsed
# JSON takes ~24 times the memory of its text when it is all "{}" and "[]", so the count,
# not the size, bounds what the grader's process holds.
MAX_JOB_NODES = 1_000_000


class TamperedFileError(Exception):
    """A file read back from a job's directory is not what the grader's code wrote."""


def open_job_file(workdir: Path, relative: str) -> int | None:
    """A read-only descriptor of ``workdir/relative``, or None when it does not exist.

    No component may be a symlink (the grader runs as root: a link to ``/dev/zero`` or to
    the solutions must not be followed) and only a regular file is opened (a FIFO would
    block); anything else raises :class:`TamperedFileError`.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    *folders, name = Path(relative).parts
    try:
        fd = os.open(workdir, flags | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    try:
        for folder in folders:
            fd, parent = os.open(folder, flags | os.O_DIRECTORY, dir_fd=fd), fd
            os.close(parent)
        fd, parent = os.open(name, flags | os.O_NONBLOCK, dir_fd=fd), fd
        os.close(parent)
    except FileNotFoundError:
        os.close(fd)
        return None
    except OSError as exc:  # ELOOP: a symlink; ENOTDIR: a folder replaced by a file; ...
        os.close(fd)
        reason = {
            errno.ELOOP: "is a symbolic link (not followed)",
            errno.ENOTDIR: "passes through something that is not a folder (a symbolic link?)",
        }.get(exc.errno, f"could not be read safely ({exc.strerror})")
        raise TamperedFileError(f"{relative} {reason}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise TamperedFileError(f"{relative} is not a regular file")
    return fd


def read_descriptor(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes from ``fd``'s position on."""
    chunks, left = [], limit
    while left > 0 and (chunk := os.read(fd, min(left, 2**20))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_job_file(workdir: Path, relative: str, limit: int, tail: bool = False) -> bytes | None:
    """Read ``workdir/relative`` as :func:`open_job_file` opens it: at most ``limit`` bytes
    (a larger file is :class:`TamperedFileError`), or its last ``limit`` bytes when ``tail``.
    Returns None when the file does not exist."""
    fd = open_job_file(workdir, relative)
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            if not tail:
                raise TamperedFileError(f"{relative} is larger than {limit} bytes")
            os.lseek(fd, size - limit, os.SEEK_SET)
        return read_descriptor(fd, limit)
    finally:
        os.close(fd)


def parse_record_line(line: bytes) -> dict[str, Any] | None:
    """One JSON record, or None for anything malformed, too deep or too large to parse."""
    if json_nodes(line) > MAX_RECORD_NODES:
        return None
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("value"), dict) or "name" not in record:
        return None
    return record


class RecordCollector:
    """The runner's copy of the records each cell made (see the module docstring).

    ``checks_dir``: where ``check()`` writes (``checks.jsonl`` and ``.npy`` files);
    ``sink``: a file descriptor the grader opened for the runner, appended one JSON line per
    record: ``{"cell", "name", "value", "criteria"}`` with arrays inlined as base64 ``npy``.
    """

    def __init__(self, checks_dir: Path, sink: int, records_file: str, budget: int = MAX_RECORD_BYTES) -> None:
        self.checks_dir, self.sink, self.records_file = checks_dir, sink, records_file
        self.file: tuple[int, int] | None = None  # (device, inode) of the records file read last
        self.offset = 0  # bytes of it already collected
        # Bytes still to read and write: the sink must stay below the runner's file-size limit.
        self.count, self.budget, self.nodes = 0, min(budget, MAX_RECORD_BYTES), MAX_JOB_NODES
        self.tampered: list[str] = []

    def collect(self, cell_index: int) -> None:
        """Take the records appended since the last call as made by cell ``cell_index``.

        ``check()`` only appends: a records file replaced or truncated since the last call
        is tampering (a copy with changed values swapped in, say), and what it holds at that
        moment is not collected; what is appended to it afterwards is.
        """
        try:
            fd = open_job_file(self.checks_dir, self.records_file)
        except TamperedFileError as exc:
            self._tamper(str(exc))
            return
        if fd is None:
            return
        try:
            info = os.fstat(fd)
            if self.file is not None and ((info.st_dev, info.st_ino) != self.file or info.st_size < self.offset):
                self._tamper(f"{self.records_file} was replaced or truncated (check() only appends); what it "
                             "held then was not collected")
                self.file, self.offset = (info.st_dev, info.st_ino), info.st_size
                return
            self.file = (info.st_dev, info.st_ino)
            os.lseek(fd, self.offset, os.SEEK_SET)
            cap = max(self.budget, 0)
            new = read_descriptor(fd, cap)
            cut = 0 < cap == len(new) or info.st_size > self.offset + len(new)  # more than the budget lets us read
        finally:
            os.close(fd)
        self.offset += len(new)
        # Lines end at "\n" only (str.splitlines would also split at "\r" and others), and a
        # line left open at the end of a cell is dropped, not completed by the next cell.
        *complete, _unterminated = new.split(b"\n")
        for line in complete:
            nodes = json_nodes(line)
            if self.count >= MAX_RECORDS or self.budget <= 0 or nodes > self.nodes:
                self._over_limits()
                return
            record = parse_record_line(line)
            if record is None:  # check() writes neither: written around it, or a value built to be huge
                if line.strip():
                    self._tamper(f"a line of {self.records_file} that is not a record check() could write (malformed, "
                                 f"nested too deep, or over {MAX_RECORD_NODES} JSON objects and lists) was not collected")
                continue
            self.nodes -= nodes
            try:
                value = self._inline(record["value"])
            except (TypeError, ValueError, KeyError, RecursionError):
                continue
            criteria = record.get("criteria")
            out = json.dumps({"cell": cell_index, "name": str(record["name"]), "value": value,
                              "criteria": criteria if isinstance(criteria, dict) else {}}).encode() + b"\n"
            self.budget -= len(out)
            self.count += 1
            os.write(self.sink, out)
        if cut:  # the rest would be read mid-line next time: stop here, and say why
            self.budget = 0
            self._over_limits()

    def _over_limits(self) -> None:
        self._tamper(f"more records than a job may make ({MAX_RECORDS} records, {MAX_RECORD_BYTES // 2**20} "
                     f"MiB, {MAX_JOB_NODES} JSON objects and lists): the rest were not collected")

    def _inline(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise TypeError("a record's value must be an object")
        if "file" in value:
            name = Path(str(value["file"])).name  # only files in the checks folder itself
            try:
                data = read_job_file(self.checks_dir, name, max(self.budget, 0))
            except TamperedFileError:
                data = None
            if data is None:
                raise TypeError("array file missing")
            self.budget -= len(data)
            value = {**value, "npy_base64": base64.b64encode(data).decode()}
            del value["file"]
        if value.get("kind") == "sequence":
            items = value.get("items")
            value = {**value, "items": [self._inline(v) for v in (items if isinstance(items, list) else [])]}
        return value

    def _tamper(self, reason: str) -> None:
        if reason not in self.tampered:
            self.tampered.append(reason)
