"""Course layout and per-submission limits (typed, with the defaults instructors get)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    """What one submission may use while it is executed."""

    cell_timeout: float = 120.0  # seconds per cell; the cell is interrupted, later cells run
    notebook_timeout: float = 900.0  # wall-clock seconds for the whole notebook
    memory_bytes: int = 8 * 2**30  # address space of the kernel process
    cpu_seconds: int = 3600  # CPU time of the kernel process
    max_processes: int = 256  # processes of the sandbox user (enforced when not root)
    max_file_bytes: int = 256 * 2**20  # largest file the kernel may write
    max_cell_output_bytes: int = 2**20  # outputs kept per cell; the rest is dropped
    max_output_bytes: int = 16 * 2**20  # outputs kept per notebook
    max_notebook_bytes: int = 64 * 2**20  # larger submissions are rejected unread
    scratch_bytes: int = 2**30  # private /tmp (and /var/tmp, /dev/shm) of an isolated job
    gpu_memory_fraction: float = 0.9  # torch's per-process cap on a shared GPU (a guard the job can lift)
    gpu_memory_bytes: int = 8 * 2**30  # GPU memory of the job's processes, read by the driver (gpu_memory.py)


@dataclass(frozen=True)
class Course:
    """Where a course keeps its source, releases, submissions and grades."""

    root: Path
    db_url: str = ""
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())
        if not self.db_url:
            url = os.environ.get("AUTOGRADER_DB_URL") or f"sqlite:///{self.root / 'gradebook.db'}"
            object.__setattr__(self, "db_url", url)

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def release(self) -> Path:
        return self.root / "release"

    @property
    def submitted(self) -> Path:
        return self.root / "submitted"

    @property
    def autograded(self) -> Path:
        return self.root / "autograded"

    @property
    def feedback(self) -> Path:
        return self.root / "feedback"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def cache(self) -> Path:
        """Reference runs of the solutions (trusted records to compare against)."""
        return self.autograded / ".reference"


def ensure_tools_on_path() -> None:
    """Put this interpreter's ``bin`` first on PATH: nbgrader runs ``alembic`` from PATH and
    papermill starts kernels with ``python``, both of which must come from this environment."""
    bin_dir = str(Path(os.sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if not parts or parts[0] != bin_dir:
        os.environ["PATH"] = os.pathsep.join([bin_dir, *[p for p in parts if p != bin_dir]])
