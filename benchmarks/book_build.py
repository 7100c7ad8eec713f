"""Book build time: a cold ``make book`` and a rebuild with nothing changed, in one run.

    .venv/bin/python benchmarks/book_build.py [--keep] [--warm-data]

Copies the working tree (sources as they are now, without ``_build``, ``release/``, the
gradebook or other outputs) into a temporary folder and runs ``make book`` there twice
with this virtual environment: first cold (no jupyter-cache, nothing released, every page
executed), then again with nothing changed. Prints both times side by side with the goals
(cold < 10 min on 2 cores, unchanged rebuild < 30 s) and each page's execution time.
The working tree's own ``_build`` is never touched.

``--warm-data`` keeps the dataset cache (``COURSE_DATA_DIR``, default
``~/.cache/dl-course``); without it the cold build starts from an empty one, as on a
fresh machine. ``--keep`` leaves the temporary copy (and its logs) behind.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
COLD_GOAL_S = 600.0
REBUILD_GOAL_S = 30.0

# Outputs and local state that a fresh clone does not have.
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "_build", "release", "autograded", "submitted", "feedback", "exports",
    "gradebook.db", ".pytest_cache", ".ruff_cache", "__pycache__", "*.egg-info", "test-artifacts",
    "node_modules", ".data", ".ipynb_checkpoints",
)


def make_book(book: Path, env: dict[str, str], log: Path) -> tuple[float, int]:
    """Seconds and exit status of ``make book`` in ``book`` with this environment
    (``-o`` keeps make from reinstalling it)."""
    stamp = VENV / ".installed"
    cmd = ["make", "-C", str(book), "book", f"VENV={VENV}", "-o", str(stamp)]
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    return time.perf_counter() - start, proc.returncode


def page_times(log: Path) -> list[tuple[str, float]]:
    pattern = re.compile(r"^(\S+): Executed notebook in ([\d.]+) seconds", re.M)
    return [(path, float(seconds)) for path, seconds in pattern.findall(log.read_text())]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--warm-data", action="store_true", help="reuse the dataset cache")
    args = parser.parse_args()
    if not (VENV / "bin" / "jupyter-book").is_file():
        print(f"run with the course environment (.venv/bin/python): no jupyter-book in {VENV}", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="book-build-"))
    try:
        book = tmp / "book"
        shutil.copytree(ROOT, book, ignore=NOT_COPIED, symlinks=True)
        env = {**os.environ, "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}"}
        if not args.warm_data:
            env["COURSE_DATA_DIR"] = str(tmp / "data")
        vendored = "copied from the working tree" if (book / "_vendor").is_dir() else "installed from npm (in the cold time)"
        print(f"book copied to {book}; MathJax {vendored}; cores: {os.cpu_count()}")

        cold, cold_rc = make_book(book, env, tmp / "cold.log")
        print(f"cold build:      {cold:7.1f} s  (exit {cold_rc})", flush=True)
        again, again_rc = make_book(book, env, tmp / "rebuild.log")
        print(f"unchanged:       {again:7.1f} s  (exit {again_rc})", flush=True)

        print()
        print(f"{'':22}{'measured':>10}{'goal':>10}")
        for name, seconds, goal in (("cold make book", cold, COLD_GOAL_S), ("unchanged rebuild", again, REBUILD_GOAL_S)):
            verdict = "ok" if seconds < goal else "OVER"
            print(f"{name:22}{seconds:9.1f}s{goal:9.0f}s  {verdict}")
        executed = page_times(tmp / "cold.log")
        if executed:
            print("\npages executed in the cold build (slowest first):")
            for path, seconds in sorted(executed, key=lambda item: -item[1]):
                rel = os.path.relpath(path, book) if os.path.isabs(path) else path
                print(f"  {seconds:7.1f} s  {rel}")
            print(f"  {sum(s for _, s in executed):7.1f} s  in all ({len(executed)} pages)")
        rerun = page_times(tmp / "rebuild.log")
        if rerun:
            print(f"\nthe unchanged rebuild executed {len(rerun)} page(s) again: {[p for p, _ in rerun]}")
        for name, rc in (("cold.log", cold_rc), ("rebuild.log", again_rc)):
            if rc != 0:
                print(f"\n{name}: make book failed (exit {rc}); its end:\n" + (tmp / name).read_text()[-4000:])
        return 1 if cold_rc or again_rc else 0
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
