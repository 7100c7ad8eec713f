"""What an instructor or student sees for their mistakes: one clear line, no traceback."""

import argparse

import nbformat
import pytest

from autograder import cli
from autograder.cells import read_executed
from autograder.config import Limits
from autograder.grade import find_submissions
from autograder.load import SubmissionError, read_submission
from autograder.score import answer_errors
from autograder.validate import CODE_STUB, ValidationReport, format_report
from tests.autograder.conftest import submit


def run(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


def test_a_mistyped_student_is_an_error_not_a_new_student(course, capsys):
    submit(course, "alice", "correct")
    with pytest.raises(ValueError, match="no submission of 'tiny' for ghost"):
        find_submissions(course, "tiny", ["ghost", "alice"])
    status, _, err = run(capsys, "--course", str(course.root), "grade", "tiny", "--students", "ghost")
    assert status == 2 and "for ghost" in err
    assert not course.autograded.exists() and not (course.root / "gradebook.db").exists()  # nothing recorded


def test_nothing_to_grade_feedback_or_export_says_so(course, capsys):
    for command in ("grade", "feedback", "export"):
        status, _, err = run(capsys, "--course", str(course.root), command, "tiny")
        assert status == 2, command
        assert ("run collect first" if command == "grade" else "run grade first") in err


def test_an_unknown_assignment_outside_a_course_points_at_the_course_root(tmp_path, capsys):
    status, _, err = run(capsys, "--course", str(tmp_path), "grade", "softmax")
    assert status == 2 and "run from the course root or pass --course" in err


def test_an_unusable_gradebook_is_one_line(course, capsys):
    submit(course, "alice", "correct")
    status, _, err = run(capsys, "--course", str(course.root), "--db", "foo", "grade", "tiny")
    assert status == 2 and err.startswith("error: the gradebook foo cannot be used:")
    status, _, err = run(capsys, "--course", str(course.root), "--db", "sqlite:////nonexistent/dir/gb.db",
                         "grade", "tiny", "--workers", "1")
    assert status == 2 and "unable to open database file" in err


def test_a_source_nbgrader_cannot_release_is_a_configuration_error(course, capsys):
    source = course.root / "solutions" / "tiny" / "tiny.ipynb"
    source.write_text(source.read_text().replace("### END SOLUTION", "", 1))  # an unclosed solution
    for command in ("release", "grade"):
        submit(course, "alice", "correct")
        status, _, err = run(capsys, "--course", str(course.root), command, "tiny")
        assert status == 2 and err.startswith("error: nbgrader could not release tiny"), command


def test_validate_runs_on_the_graders_offline_data_and_offers_no_course_options():
    assert cli.parser().parse_args(["validate", "softmax.ipynb"]).data_source == "offline"
    with pytest.raises(SystemExit):  # it reads nothing of a course: an option that did nothing is gone
        cli.parser().parse_args(["validate", "softmax.ipynb", "--db", "sqlite:///x.db"])


def test_workers_must_be_positive(course, capsys):
    submit(course, "alice", "correct")
    status, _, err = run(capsys, "--course", str(course.root), "grade", "tiny", "--workers", "0")
    assert status == 2 and "--workers must be at least 1" in err


def test_validate_refuses_a_folder(tmp_path, capsys):
    status, _, err = run(capsys, "validate", str(tmp_path))
    assert status == 2 and "a folder, not a notebook file" in err
    status, _, err = run(capsys, "validate", str(tmp_path / "nosuch.ipynb"))
    assert status == 2 and "no such file" in err and "not used" not in err
    status, _, err = run(capsys, "--db", "sqlite:///x.db", "validate", str(tmp_path / "nosuch.ipynb"))
    assert err.startswith("note: validate reads only your notebook; --course and --db are not used")
    (tmp_path / "broken.ipynb").write_text("{not json")
    status, _, err = run(capsys, "validate", str(tmp_path / "broken.ipynb"))
    assert status == 1 and "not valid JSON" in err  # the file needs attention: not a usage error
    folder = tmp_path / "looks.ipynb"
    folder.mkdir()
    with pytest.raises(SubmissionError, match="a folder, not a notebook file"):
        read_submission(folder, Limits())


def executed(*cells):
    nb = nbformat.v4.new_notebook()
    for gid, solution, error in cells:
        cell = nbformat.v4.new_code_cell("...", metadata={"nbgrader": {"grade_id": gid, "solution": solution}})
        if error:
            cell.outputs = [nbformat.v4.new_output("error", ename=error[0], evalue=error[1], traceback=[])]
        nb.cells.append(cell)
    return nbformat.writes(nb)


def test_answer_cell_errors_are_reported_by_name():
    notebook = read_executed(executed(
        ("mean", True, ("RuntimeError", "I was debugging here")), ("double", True, None),
        ("stub", True, ("NotImplementedError", "")), ("test_mean", False, ("NameError", "mean"))))
    assert answer_errors(notebook) == [
        "answer cell 'mean' raised RuntimeError: I was debugging here",
        "answer cell 'stub' is not written yet (it raises NotImplementedError)",
    ]  # a test cell's error is the test's business, not listed here
    assert answer_errors(None) == []


def test_validate_report_names_broken_answers_and_unwritten_ones():
    report = ValidationReport(passed=[("test_double", 1.0)],
                              failed=[("test_mean", 2.0, "NotImplementedError (an answer this test uses is not written yet)")],
                              answer_errors=[("mean", "RuntimeError: I was debugging here")])
    text = format_report(report)
    assert "  ERROR answer 'mean' raised RuntimeError: I was debugging here" in text
    assert "\n1 passed, 1 failed (not ready). Hidden tests run only when your instructor grades;" in text
    assert not report.ok and ValidationReport(passed=[("t", 1.0)]).ok
    assert not ValidationReport().ok and "(no visible test ran)" in format_report(ValidationReport())
    given = ValidationReport(passed=[("t", 1.0)], given_errors=[
        ("em_on_images", "NotImplementedError (an answer it uses is not written yet)")])
    assert not given.ok and ("  ERROR the given cell 'em_on_images' raised NotImplementedError (an answer it uses "
                             "is not written yet): tests that use what it makes fail with it") in format_report(given)


def test_validate_lists_tests_in_notebook_order_under_their_parts():
    report = ValidationReport(passed=[("test_a", 1.0), ("test_c", 1.0)], failed=[("test_b", 2.0, "AssertionError: no")],
                              sections={"test_a": "Part 1: a", "test_b": "Part 1: a", "test_c": "Part 2: c"})
    assert format_report(report).splitlines()[:5] == [
        "Part 1: a", "  PASS  test_a (1 pt)", "  FAIL  test_b (2 pt): AssertionError: no", "Part 2: c",
        "  PASS  test_c (1 pt)"]


def _cell(kind, source, gid=None, **nbgrader):
    meta = {"nbgrader": {"grade_id": gid, **nbgrader}} if gid else {}
    new = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    return new(source, metadata=meta)


def _validated(tmp_path, monkeypatch, cells, *, errors=(), unrun=(), status="ok", message="", released=None,
               parameters=None):
    """validate() on a notebook of ``cells`` whose run is faked: each code cell runs, raising what
    ``errors`` says for its grade id, except those in ``unrun``. Returns the report and the job."""
    from autograder import validate as validate_module
    from autograder.execute import ExecutionOutcome

    nb = nbformat.v4.new_notebook(cells=cells)
    if released is not None:
        nb.metadata["autograder"] = released
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    jobs, raised = [], dict(errors)

    def fake_execute(job):
        jobs.append(job)
        ran = nbformat.reads(job.notebook, as_version=4)
        for count, cell in enumerate(ran.cells, 1):
            if cell.cell_type != "code":
                continue
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            cell.execution_count = None if gid in unrun else count
            if gid in raised and cell.execution_count:
                cell.outputs = [nbformat.v4.new_output("error", ename=raised[gid][0], evalue=raised[gid][1],
                                                       traceback=[])]
        return ExecutionOutcome(status, message, None if status == "no notebook" else nbformat.writes(ran), [], 1.0)

    monkeypatch.setattr(validate_module, "execute", fake_execute)
    report = validate_module.validate(path, parameters)
    return report, jobs[0]


def test_validate_sorts_every_cell_of_the_run_into_its_verdict(tmp_path, monkeypatch):
    """validate without a kernel: the run is faked, so what is checked is how each executed cell is read."""
    cells = [
        _cell("markdown", "# Tiny"),  # the notebook's title, not a part
        _cell("markdown", "## Part 1: double"),
        _cell("code", "def double(x):\n    return 2 * x", "double", solution=True),
        _cell("code", "data = load()", "data", locked=True),
        _cell("code", "assert double(3) == 6", "test_double", grade=True, points=2),
        _cell("markdown", "## Part 2: the rest"),
        _cell("code", f"def mean(x):\n    {CODE_STUB}", "mean", solution=True),
        _cell("code", "raise RuntimeError('debugging')", "boom", solution=True),
        _cell("code", "raise NotImplementedError('soon')", "soon", solution=True),  # no stub text: the run tells
        _cell("code", CODE_STUB, "top", solution=True),  # both the text and the run say so: listed once
        _cell("code", "plot(mean(data))", "plot", locked=True),
        _cell("code", "assert mean([1]) == 1", "test_mean", grade=True, points=3),
        _cell("code", "assert boom", "test_boom", grade=True, points=1),
        _cell("code", "assert soon", "test_soon", grade=True, points=0.5),
        _cell("code", "1 / 0"),  # the student's own cell: no grade id, not reported
        _cell("markdown", "YOUR ANSWER HERE", "q_mean", solution=True, grade=True, points=1),
        _cell("markdown", "The mean is the sum over the count.", "q_done", solution=True, grade=True, points=1),
    ]
    errors = {"data": ("ValueError", "bad file"), "boom": ("RuntimeError", "debugging"),
              "soon": ("NotImplementedError", "soon"), "top": ("NotImplementedError", ""),
              "plot": ("NotImplementedError", ""), "test_mean": ("NotImplementedError", ""),
              "test_boom": ("AssertionError", ""), None: ("ZeroDivisionError", "division by zero")}
    report, job = _validated(tmp_path, monkeypatch, cells, errors=errors, unrun={"test_soon"},
                             released={"tests": ["test_double", "test_gone"], "answers": ["double", "gone", "q_mean"]},
                             parameters={"quick": False})
    assert (job.parameters, job.label, job.own_work) == ({"quick": False}, "validate", True)
    assert report.passed == [("test_double", 2.0)]
    assert report.failed == [("test_mean", 3.0, "NotImplementedError (an answer this test uses is not written yet)"),
                             ("test_boom", 1.0, "AssertionError"), ("test_soon", 0.5, "did not run")]
    assert report.unanswered == ["mean", "top", "q_mean", "soon"]
    assert report.answer_errors == [("boom", "RuntimeError: debugging")]
    assert report.given_errors == [("data", "ValueError: bad file"),
                                   ("plot", "NotImplementedError (an answer it uses is not written yet)")]
    assert (report.missing_tests, report.missing_answers) == (["test_gone"], ["gone"])
    assert report.sections == {"test_double": "Part 1: double", "test_mean": "Part 2: the rest",
                               "test_boom": "Part 2: the rest", "test_soon": "Part 2: the rest"}
    assert report.problems == [] and report.redefined == [] and not report.ok


def test_validate_of_a_clean_run_is_ok_and_a_failed_run_still_reports_the_unwritten_answers(tmp_path, monkeypatch):
    cells = [_cell("code", "def double(x):\n    return 2 * x", "double", solution=True),
             _cell("code", "assert double(3) == 6", "test_double", grade=True, points=2)]
    report, job = _validated(tmp_path, monkeypatch, cells, released="not a dict")  # a mangled entry reads as none
    assert job.parameters == {} and report.ok and report.passed == [("test_double", 2.0)]
    assert format_report(report).startswith("  PASS  test_double (2 pt)\n1 passed, 0 failed (all visible tests pass). ")
    assert (report.problems, report.missing_tests, report.missing_answers) == ([], [], [])

    cells[0].source = f"def double(x):\n    {CODE_STUB}"
    stopped, _ = _validated(tmp_path, monkeypatch, cells, unrun={"double", "test_double"}, status="kernel_died",
                            message="the kernel died", released={"tests": ["test_double"], "answers": ["double"]})
    assert stopped.problems == ["the kernel died"] and stopped.unanswered == ["double"]
    assert stopped.failed == [("test_double", 2.0, "did not run")] and not stopped.ok
    lost, _ = _validated(tmp_path, monkeypatch, cells, status="no notebook", message="the runner died")
    assert lost.problems == ["the runner died"] and lost.unanswered == ["double"]
    assert (lost.passed, lost.failed, lost.sections) == ([], [], {})  # nothing ran that could be read


def test_validate_counts_a_stub_as_written_if_each_stubbed_definition_comes_again_before_the_test(
        tmp_path, monkeypatch):
    answer = f"def helper():\n    return 1\n\n\ndef triple(x):\n    {CODE_STUB}"  # the helper holds no stub
    later = _cell("code", "import math\n\n\ndef triple(x):\n    return 3 * x")
    magic = _cell("code", "%timeit triple(1)")  # not Python: defines nothing, breaks nothing
    test = _cell("code", "assert triple(1) == 3", "test_triple", grade=True, points=1)
    both = _cell("code", f"def triple(x):\n    {CODE_STUB}\n\n\ndef third(x):\n    {CODE_STUB}", "triple", solution=True)

    report, _ = _validated(tmp_path, monkeypatch, [_cell("code", answer, "triple", solution=True), magic, later, test])
    assert report.redefined == [("triple", ["triple"])] and report.unanswered == []
    assert "  NOTE  answer 'triple' still holds the stub, but a cell of yours further down defines triple again" \
        in format_report(report)
    before, _ = _validated(tmp_path, monkeypatch, [later, _cell("code", answer, "triple", solution=True), test])
    assert before.redefined == [] and before.unanswered == ["triple"]  # defined above: the stub ran last
    after, _ = _validated(tmp_path, monkeypatch, [_cell("code", answer, "triple", solution=True), test, later])
    assert after.redefined == [] and after.unanswered == ["triple"]  # the test ran the stub
    half, _ = _validated(tmp_path, monkeypatch, [both, later, test])
    assert half.redefined == [] and half.unanswered == ["triple"]  # third still raises
    whole, _ = _validated(tmp_path, monkeypatch, [both, later, _cell("code", "def third(x):\n    return x / 3"), test])
    assert whole.redefined == [("triple", ["third", "triple"])] and whole.unanswered == []
    text = _cell("markdown", "def triple(x):\n    return 3 * x")  # a written answer: never "defined again"
    unwritten, _ = _validated(tmp_path, monkeypatch, [_cell("code", answer, "triple", solution=True), text, test])
    assert unwritten.redefined == [] and unwritten.unanswered == ["triple"]


def test_help_explains_every_argument(capsys):
    parser = cli.parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in commands.items():
        for action in command._actions:
            assert action.help, f"{name} {action.dest} has no help text"
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "130 when interrupted" in capsys.readouterr().out


def test_course_and_gradebook_can_follow_the_command():
    from autograder.cli import parser

    after = parser().parse_args(["export", "softmax", "--db", "sqlite:///x.db", "--course", "/c"])
    before = parser().parse_args(["--db", "sqlite:///x.db", "--course", "/c", "export", "softmax"])
    neither = parser().parse_args(["export", "softmax"])
    assert (after.db, after.course) == (before.db, before.course) == ("sqlite:///x.db", "/c")
    assert (neither.db, neither.course) == ("", ".")
