"""Grading speed: this autograder against stock ``nbgrader autograde``, in one run.

    .venv/bin/python benchmarks/grading_speed.py [--assignment softmax] [--n 16] [--workers 2]

Grades the same N submissions (copies of the solution with ``quick = True`` set in their
parameters cell, so that every tool runs exactly the same code) on this machine and prints
the times side by side: papermill alone (execution only, one after another), stock
``nbgrader autograde`` (serial, its own gradebook), and ``autograder grade`` with one
worker and with ``--workers`` workers.

Overhead per submission = (our one-worker time - papermill's serial time) / N: everything
we add to plain execution, the sandbox, the reference run of the solution and the
gradebook included; printed also with the reference run counted as one more execution.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def setup(base: Path, assignment: str, n: int) -> Path:
    course = base / "course"
    shutil.copytree(ROOT / "solutions" / assignment, course / "solutions" / assignment)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.source_directory = 'solutions'\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{course}/nbgrader.db'\n"
        "c.Execute.timeout = 600\n"
    )
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    subprocess.run([BIN / "nbgrader", "generate_assignment", assignment, "--force"], cwd=course, env=env,
                   check=True, capture_output=True)
    quick_copy = (course / "solutions" / assignment / f"{assignment}.ipynb").read_text()
    assert '"quick = False' in quick_copy, "the parameters cell must set quick = False"
    for i in range(n):
        target = course / "submitted" / f"s{i:02d}" / assignment / f"{assignment}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(quick_copy.replace('"quick = False', '"quick = True', 1))
    return course


def scores(db: Path, args: argparse.Namespace) -> list[float]:
    """Each submission's total score in an nbgrader gradebook (both tools write one)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}") as gradebook:
        return [round(gradebook.find_submission(args.assignment, f"s{i:02d}").score, 4) for i in range(args.n)]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assignment", default="softmax")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="our grader's --device (nbgrader and papermill use the default)")
    args = parser.parse_args(argv)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "COURSE_DATA_SOURCE": "offline"}
    with tempfile.TemporaryDirectory() as tmp:
        course = setup(Path(tmp), args.assignment, args.n)
        source = course / "solutions" / args.assignment / f"{args.assignment}.ipynb"

        start = time.perf_counter()
        for i in range(args.n):
            subprocess.run([BIN / "papermill", source, Path(tmp) / f"pm{i}.ipynb", "-p", "quick", "True",
                            "-p", "data_source", "offline", "--no-progress-bar"], env=env, check=True, capture_output=True)
        papermill = time.perf_counter() - start

        start = time.perf_counter()
        subprocess.run([BIN / "nbgrader", "autograde", args.assignment, "--force"], cwd=course, env=env,
                       capture_output=True, check=True)
        nbgrader = time.perf_counter() - start

        ours = {}
        for workers in sorted({1, args.workers}):
            shutil.rmtree(course / "autograded", ignore_errors=True)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "autograder", "--course", str(course), "--db",
                            f"sqlite:///{course}/ours{workers}.db", "grade", args.assignment, "--workers",
                            str(workers), "--device", args.device], env=env, capture_output=True, check=True)
            ours[workers] = time.perf_counter() - start
            # Timings mean something only if both tools graded every submission the same way.
            theirs_scores, our_scores = scores(course / "nbgrader.db", args), scores(course / f"ours{workers}.db", args)
            if our_scores != theirs_scores:
                raise SystemExit(f"scores differ: nbgrader {theirs_scores}, autograder {our_scores}")

    per = lambda t: t / args.n  # noqa: E731
    print(f"{args.n} submissions of {args.assignment!r}, {os.cpu_count()} cores, {args.workers} workers; "
          f"every tool gave every submission {our_scores[0]:g} points")
    print(f"{'papermill alone (serial)':<32}{papermill:8.1f} s  {per(papermill):6.2f} s/submission")
    print(f"{'nbgrader autograde (serial)':<32}{nbgrader:8.1f} s  {per(nbgrader):6.2f} s/submission")
    for workers, seconds in ours.items():
        label = f"autograder grade, {workers} worker{'s' if workers > 1 else ''}"
        print(f"{label:<32}{seconds:8.1f} s  {per(seconds):6.2f} s/submission (reference run included)")
    print(f"speed-up over nbgrader with {args.workers} workers: {nbgrader / ours[args.workers]:.2f}x (target >= 1.8x)")
    print(f"overhead per submission: {per(ours[1]) - per(papermill):+.2f} s (one worker vs papermill; target <= 0.5 s)")
    reference_counted = (ours[1] - per(papermill) * (args.n + 1)) / args.n
    print(f"  of which not the one reference run (counted as one more execution): {reference_counted:+.2f} s")
    print("  (below zero: each papermill CLI run also imports jsonschema's IRI grammar with nbformat, "
          "~1 s of CPU, validates and pretty-prints the notebook at every cell, and waits for a "
          "graceful kernel shutdown; the grader's runner skips all three: autograder/runner.py, engine.py)")
    return {"papermill": papermill, "nbgrader": nbgrader, **{f"autograder, {w} workers": t for w, t in ours.items()}}


if __name__ == "__main__":
    main()
