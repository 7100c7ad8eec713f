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
from autograder.validate import ValidationReport, format_report
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
