"""The command line: ``python -m autograder COMMAND`` (also ``course-grader COMMAND``).

Run from the course root (or pass ``--course``). Exit status: 0 when everything went
well; 1 when something needs attention (for ``grade``: a submission with problems, earlier
runs' included); 2 for usage or configuration errors; 130 when interrupted (Ctrl-C), 143 when
terminated (SIGTERM): both stop the running notebooks and keep what was recorded.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path

from autograder.config import Course, Limits

EPILOG = """Run from the course root (or pass --course). Exit status: 0 when everything went well;
1 when something needs attention (grade: a submission with problems, earlier runs' included;
the table says which); 2 for usage or configuration errors, never for a submission;
130 when interrupted, 143 when terminated (grade keeps what it recorded: run it again to continue)."""


def _course(args: argparse.Namespace) -> Course:
    limits = Limits(
        cell_timeout=args.timeout if getattr(args, "timeout", None) else Limits.cell_timeout,
        notebook_timeout=getattr(args, "notebook_timeout", None) or Limits.notebook_timeout,
        gpu_memory_bytes=int(args.gpu_memory * 2**30) if getattr(args, "gpu_memory", None) else Limits.gpu_memory_bytes,
    )
    return Course(Path(args.course), db_url=args.db or "", limits=limits)


def cmd_release(args: argparse.Namespace) -> int:
    from autograder.release import release
    from autograder.source import list_assignments

    course = _course(args)
    names = [args.assignment] if args.assignment else list_assignments(course)
    for name in names:
        print(f"released {name}: {release(course, name)}")
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from autograder.collect import collect
    from autograder.worksheet import read_worksheet

    worksheet = read_worksheet(Path(args.worksheet)) if args.worksheet else None
    report = collect(_course(args), Path(args.path), args.assignment, worksheet)
    for s in report.submissions:
        print(f"imported {s.student}/{s.assignment} from {s.origin}" + (" (marked late by the LMS)" if s.late else ""))
    for message in report.set_aside:
        print(f"older: {message}")
    sys.stdout.flush()  # problems (stderr) after the imports, also when both go to one pipe
    for problem in report.problems:
        print(f"NOT IMPORTED: {problem}", file=sys.stderr)
    sys.stderr.flush()
    print(f"{len(report.imported)} imported, {len(report.problems)} problems")
    return 1 if report.problems else 0


def cmd_grade(args: argparse.Namespace) -> int:
    from autograder.grade import GradeOptions, grade

    options = GradeOptions(
        students=args.students, device=args.device, workers=args.workers, scheduler=args.scheduler,
        force=args.force, seed=args.seed, data_source=args.data_source, quick=not args.full,
    )
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    report = grade(_course(args), args.assignment, options)
    everyone = [(r, "") for r in report.results] + [(r, "*") for r in report.unchanged]
    width = max([len(r.student) for r, _ in everyone] + [7])
    print(f"\n{'student':<{width}}  {'score':>11}  status   problems")
    for r, unchanged in sorted(everyone, key=lambda row: row[0].student):
        score, pending = report.standings.get(r.student, (r.score, r.needs_manual_grading))
        manual = "+" if pending else " "
        status = r.status + unchanged
        print(f"{r.student:<{width}}  {round(score, 2):5g}/{r.max_score:<4g}{manual}  {status:<9} {'; '.join(r.problems)[:120]}")
    print("(scores as the gradebook holds them, manual grades included; +: written answers await grading)")
    if report.unchanged:
        print(f"(*: unchanged since it was graded, not run again; --force regrades: {len(report.unchanged)})")
    problems = len(report.problems)
    print(f"{len(report.results)} graded now, {len(report.unchanged)} unchanged, {problems} with problems")
    return 1 if problems else 0


def cmd_validate(args: argparse.Namespace) -> int:
    from autograder.load import SubmissionError
    from autograder.validate import format_report, validate

    if args.db or args.course != ".":  # given before the command, where every command accepts them
        print("note: validate reads only your notebook; --course and --db are not used", file=sys.stderr)
    path = Path(args.notebook)
    if not path.is_file():
        print(f"{args.notebook}: {'a folder, not a notebook file' if path.is_dir() else 'no such file'}",
              file=sys.stderr)
        return 2
    try:
        report = validate(path, {"quick": not args.full, "data_source": args.data_source})  # as grade runs it
    except SubmissionError as exc:  # the file is there but cannot be graded: it needs attention (1)
        print(f"{args.notebook}: {exc}", file=sys.stderr)
        return 1
    print(format_report(report))
    return 0 if report.ok else 1


def cmd_feedback(args: argparse.Namespace) -> int:
    from autograder.feedback import feedback

    paths = feedback(_course(args), args.assignment)
    print(f"wrote {len(paths)} feedback page{'' if len(paths) == 1 else 's'} under {_course(args).feedback}")
    return 0


def due_time(text: str) -> datetime:
    """``--due``: an ISO date and time; without a UTC offset, this machine's local time."""
    example = "such as '2026-12-01 23:59' or '2026-12-01T23:59+01:00'"
    try:
        due = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date and time {example}") from None
    if len(text.strip()) <= len("2026-12-01"):  # a date alone would mean its first minute
        raise argparse.ArgumentTypeError(f"{text!r} has no time of day: give one, {example}")
    return due.astimezone() if due.tzinfo is None else due


def cmd_export(args: argparse.Namespace) -> int:
    from autograder.canvas import read_gradebook
    from autograder.export import canvas_file, export, final_scores, moodle_files
    from autograder.source import load_assignment
    from autograder.worksheet import read_worksheet

    course = _course(args)
    if args.canvas_column and not args.canvas_gradebook:
        raise ValueError("--canvas-column names a column of the file given with --canvas-gradebook")
    # A file that cannot be read is an error before any work.
    worksheet = read_worksheet(Path(args.worksheet)) if args.worksheet else None
    gradebook = read_gradebook(Path(args.canvas_gradebook)) if args.canvas_gradebook else None
    # One reading of the gradebook for every file, so the uploads hold what the CSV holds
    # even if someone grades while the export runs.
    rows = final_scores(course, load_assignment(course, args.assignment))
    csv_path, report = export(course, args.assignment, args.due, rows)
    if args.due is not None:
        print(f"due {args.due.isoformat(sep=' ', timespec='minutes')}: hours late are in the CSV's hours_late column")
    print(f"grades: {csv_path}\nreport: {report}")
    uploads = []
    if worksheet is not None:
        uploads.append(("Moodle worksheet", "Upload grading worksheet", moodle_files(course, args.assignment, worksheet, rows)))
    if gradebook is not None:
        uploads.append(("Canvas gradebook", "Grades, Import",
                        canvas_file(course, args.assignment, gradebook, args.canvas_column, rows)))
    for what, how, files in uploads:
        print(f"{what}: {files.grades} ({files.filled} grade{'' if files.filled == 1 else 's'} filled in; "
              f"upload it with \"{how}\")")
        if files.feedback_zip:
            print(f"Moodle feedback: {files.feedback_zip} (upload it with \"Upload multiple feedback files in a zip\")")
        for note in files.notes:
            print(f"  {note}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m autograder", epilog=EPILOG,
                                description="Release, collect, grade, give feedback on and export notebook "
                                            "assignments (sources in solutions/<assignment>/).",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    course_help = "course root (default: current folder)"
    db_help = "gradebook URL (default: $AUTOGRADER_DB_URL, else sqlite:///<course>/gradebook.db)"
    p.add_argument("--course", default=".", help=course_help)
    p.add_argument("--db", default="", help=db_help)
    # The same two options after the command (grade softmax --db ...), where people also put them.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--course", default=argparse.SUPPRESS, help=course_help)
    common.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("release", parents=[common], help="student versions of one or all assignments into release/")
    s.add_argument("assignment", nargs="?", help="name under solutions/ (default: every assignment)")
    s.set_defaults(func=cmd_release)

    s = sub.add_parser("collect", parents=[common], help="import submissions from a folder or an LMS zip")
    s.add_argument("path", help="an LMS zip, a submitted/<student>/<assignment>/ tree, or a folder of "
                                "<student>_<assignment>.ipynb files")
    s.add_argument("--assignment", help="only this assignment; also the assignment of files students named freely "
                                        "(Moodle, or Canvas's name_userid_fileid_ files)")
    s.add_argument("--worksheet", metavar="CSV",
                   help="the assignment's Moodle grading worksheet: students are named by their email address "
                        "(the same id in every assignment) instead of Moodle's per-assignment participant number")
    s.set_defaults(func=cmd_collect)

    s = sub.add_parser("grade", parents=[common], help="execute and score submissions")
    s.add_argument("assignment", help="name under solutions/")
    s.add_argument("--students", nargs="+", help="only these students (default: everyone in submitted/)")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where notebooks run (auto: the GPUs when there are any)")
    s.add_argument("--workers", type=int, help="notebooks at once (default: one per GPU, else one per CPU core)")
    s.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786")
    s.add_argument("--timeout", type=float, help="seconds per cell (default 120)")
    s.add_argument("--notebook-timeout", type=float, help="seconds per notebook (default 900)")
    s.add_argument("--gpu-memory", type=float, help="GiB of GPU memory per submission (default 8)")
    s.add_argument("--seed", type=int, default=0, help="the notebooks' seed parameter (default 0)")
    s.add_argument("--data-source", choices=["auto", "download", "offline"], default="offline",
                   help="the notebooks' data_source parameter (default offline: no network in the sandbox)")
    s.add_argument("--full", action="store_true", help="grade with quick=False (full training runs)")
    s.add_argument("--force", action="store_true", help="regrade submissions already graded")
    s.set_defaults(func=cmd_grade)

    # No --course or --db: a student's check reads nothing of the course but the notebook.
    s = sub.add_parser("validate", help="run your notebook's visible tests before submitting")
    s.add_argument("notebook", help="your .ipynb file")
    s.add_argument("--data-source", choices=["auto", "download", "offline"], default="offline",
                   help="where datasets come from (default offline, as grade runs it; auto or download: "
                        "the real datasets when online)")
    s.add_argument("--full", action="store_true",
                   help="full training runs (quick=False), as grade --full; default: the quick runs grade uses")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("feedback", parents=[common], help="an HTML feedback page per student")
    s.add_argument("assignment", help="name under solutions/")
    s.set_defaults(func=cmd_feedback)

    s = sub.add_parser("export", parents=[common], help="CSV of grades and a report with plots")
    s.add_argument("assignment", help="name under solutions/")
    s.add_argument("--due", type=due_time, metavar="TIME",
                   help="due time, e.g. '2026-12-01 23:59' (local time) or '2026-12-01T23:59+01:00': "
                        "adds hours late per submission (no penalty is applied)")
    s.add_argument("--worksheet", metavar="CSV",
                   help="the assignment's Moodle grading worksheet: also write it with the grades filled in "
                        "(exports/<assignment>-moodle.csv) and the feedback pages in a zip, for Moodle's uploads")
    s.add_argument("--canvas-gradebook", metavar="CSV",
                   help="a Canvas gradebook export: also write the assignment's column filled in by Canvas user id "
                        "(exports/<assignment>-canvas.csv) for Canvas's grade import")
    s.add_argument("--canvas-column", metavar="NAME",
                   help="the assignment's column in the Canvas gradebook, e.g. 'Softmax regression (8812)' "
                        "(default: the one named like the assignment, or with its name as a word)")
    s.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from autograder.source import SourceError

    args = parser().parse_args(argv)
    terminated: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        terminated.append(signum)
        raise KeyboardInterrupt  # the orderly stop of Ctrl-C: jobs ended, their mounts and files removed

    # kill, a scheduler's job timeout or a cancelled CI run send SIGTERM, whose default ends
    # Python at once and would leave running notebooks and their scratch mounts behind.
    previous = signal.signal(signal.SIGTERM, stop) if threading.current_thread() is threading.main_thread() else None
    try:
        return args.func(args)
    except (SourceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:  # a mistyped --db, or a database that cannot be opened
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(f"error: the gradebook {args.db or 'gradebook.db'} cannot be used: {reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{'terminated' if terminated else 'interrupted'}: results recorded so far are kept; "
              "run the command again to continue", file=sys.stderr)
        return 128 + signal.SIGTERM if terminated else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
