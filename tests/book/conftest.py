"""Build the book once per test session (jupyter-cache keeps unchanged pages).

The build releases the assignments first, as ``make book`` does: chapters link the
student notebooks ``release/<name>/<name>.ipynb`` with MyST's ``{download}`` role, and a
missing file is a Sphinx warning, hence a failed build.

``COURSE_BOOK_ROOT=/path/to/book`` makes the browser tests use that book root's already
built ``_build/html`` (and its ``_toc.yml``, sources and ``release/``) instead of
building this working tree: for trying them against a build made elsewhere.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# Kernel log lines that say nothing about the book, dropped from the log the tests search for
# "WARNING" and "ERROR": ipykernel >= 7 warns about TCP on every kernel start, and
# jupyter_client interrupts every kernel (SIGINT) before asking it to shut down, which a
# kernel still inside a message handler logs as an error. A real interrupt of a page's
# code fails that page's execution, which the build reports on its own.
KERNEL_NOISE = re.compile(r"^\[IPKernelApp\] (WARNING \| Kernel is running over TCP without encryption\."
                          r"|ERROR \| KeyboardInterrupt caught in kernel\.).*$\n?", re.M)


def book_root() -> Path:
    """The book the browser tests look at (this working tree unless ``COURSE_BOOK_ROOT``)."""
    return Path(os.environ.get("COURSE_BOOK_ROOT") or ROOT).resolve()


def toc_pages(root: Path | None = None) -> list[str]:
    """Every page of ``_toc.yml`` (docnames without suffix), in reading order."""
    toc = yaml.safe_load(((root or ROOT) / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                pages.append(re.sub(r"\.(md|ipynb)$", "", entry["file"]))
            walk(entry.get("sections", []))
            walk(entry.get("chapters", []))

    walk(toc.get("parts", []))
    walk(toc.get("chapters", []))
    return pages


def _tool_env() -> dict[str, str]:
    """The environment ``make book`` gives the build. Without MPLBACKEND: tests/conftest.py
    sets Agg for the test process, and kernels that inherit it show no inline figures
    (``<Figure size ...>`` text instead, or nothing), which jupyter-cache would then keep."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MPLBACKEND", None)
    return env


RELEASE_TIMEOUT, BUILD_TIMEOUT = 600, 1800
# The tests whose setup builds the book get the build's own limits and a margin, instead of
# the suite's default (pyproject.toml): the build took 265-740 s on the course's machines.
BOOK_BUILD_TIMEOUT = RELEASE_TIMEOUT + BUILD_TIMEOUT + 300


@pytest.fixture(scope="session")
def book_build():
    """(exit status, log) of releasing the assignments, then ``jupyter-book build`` with
    warnings as errors."""
    env = _tool_env()
    release = subprocess.run(
        [sys.executable, "-m", "autograder", "release"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=RELEASE_TIMEOUT,
    )
    log = release.stdout + release.stderr
    if release.returncode != 0:
        return release.returncode, f"python -m autograder release failed:\n{log}"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "-W", "-n", "--keep-going"],
        capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT,
    )
    return proc.returncode, log + KERNEL_NOISE.sub("", proc.stdout + proc.stderr)


@pytest.fixture(scope="session")
def built_site(request) -> Path:
    """The root of a built book (``_build/html`` inside): builds this working tree once per
    session through ``book_build``, unless ``COURSE_BOOK_ROOT`` names one already built.

    A build with failing pages still yields a site: the browser tests then report what
    is wrong on the pages that were built (``test_build`` reports the build failure)."""
    root = book_root()
    if root == ROOT:
        request.getfixturevalue("book_build")
    if not (root / "_build" / "html" / "index.html").is_file():
        pytest.fail(f"no built site in {root / '_build' / 'html'}")
    return root
