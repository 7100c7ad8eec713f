"""References computed in the solution's run only (``expect`` in a REFERENCE region):
cut from what a submission runs with, checked against the solution, used for grading."""

import nbformat
import numpy as np
import pytest

from autograder.assemble import assemble
from autograder.cells import grade_id
from autograder.config import Limits
from autograder.execute import ExecutionOutcome
from autograder.load import read_submission
from autograder.reference import Reference, _with_references
from autograder.score import score_cells
from autograder.source import SourceError, load_assignment
from tests.autograder.conftest import SUBMISSIONS
from tests.autograder.test_steps import tensor

REGION = ("### BEGIN REFERENCE\nfrom autograder.checks import expect\n"
          "expect(\"double/tensor\", x + x)  # the reference\n### END REFERENCE\n")


def edit_test_double(course, edit) -> None:
    path = course.solutions / "tiny" / "tiny.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if grade_id(c) == "test_double")
    cell.source = edit(cell.source)
    nbformat.write(nb, path)


def with_region(source: str) -> str:
    return source.replace("### END HIDDEN TESTS", REGION + "### END HIDDEN TESTS")


def test_a_reference_region_is_cut_from_the_notebook_a_submission_runs(course):
    edit_test_double(course, with_region)
    assignment = load_assignment(course, "tiny")
    submission, _ = read_submission(SUBMISSIONS / "correct.ipynb", Limits())
    built, _ = assemble(assignment, submission)
    test = next(c for c in built.cells if grade_id(c) == "test_double")
    assert "expect(" not in test.source and "REFERENCE" not in test.source
    assert 'check("double/tensor", double(x))\n### END HIDDEN TESTS' in test.source  # the rest untouched
    source_test = next(c for c in assignment.notebook.cells if grade_id(c) == "test_double")
    assert "expect(\"double/tensor\", x + x)" in source_test.source  # the solution's run keeps it


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: REGION + s, "outside its hidden tests"),
    (lambda s: s.replace("### END HIDDEN TESTS", "### BEGIN REFERENCE\nexpect('a', 1)\n### END HIDDEN TESTS"),
     "unmatched"),
    (lambda s: s.replace("### END HIDDEN TESTS", "for i in range(2):\n    ### BEGIN REFERENCE\n    expect('a', i)\n"
                                                 "    ### END REFERENCE\n### END HIDDEN TESTS"), "does not parse"),
    # a region that swallows the end of the hidden tests would cut visible code from every run
    (lambda s: s.replace("### END HIDDEN TESTS", "### BEGIN REFERENCE\n### END HIDDEN TESTS\ncheck('v', 1)\n"
                                                 "### END REFERENCE"), "crosses its hidden tests' markers"),
    (lambda s: s.replace("### END HIDDEN TESTS", "expect('double/tensor', x + x)\n### END HIDDEN TESTS"),
     "outside a REFERENCE region"),  # it would run in every student's kernel
])
def test_a_reference_region_must_be_hidden_whole_and_leave_code_that_parses(course, edit, message):
    edit_test_double(course, edit)
    with pytest.raises(SourceError, match=message):
        load_assignment(course, "tiny")


def record(name, value, **criteria):
    return {"name": name, "value": value, "cell": 4,
            "criteria": {"rtol": 1e-4, "atol": 1e-6, "at_least": None, "at_most": None, **criteria}}


def test_students_are_graded_against_the_expected_value_which_the_solution_must_meet(course):
    assignment = load_assignment(course, "tiny")
    solution = tensor(np.array([2.0, 4.0], dtype=np.float32))
    exact = tensor(np.array([2.0, 4.00001], dtype=np.float32))
    made = [record("double/tensor", solution), {"name": "double/tensor", "value": exact, "criteria": {"expect": True}}]
    references = _with_references(assignment, "test_double", made)
    assert [r["name"] for r in references] == ["double/tensor"] and references[0]["value"] is exact
    wrong = {"name": "double/tensor", "value": tensor(np.array([2.0, 5.0], dtype=np.float32)), "criteria": {"expect": True}}
    with pytest.raises(SourceError, match="fails its own check 'double/tensor'.*values differ"):
        _with_references(assignment, "test_double", [made[0], wrong])
    with pytest.raises(SourceError, match=r"does not record: \['typo'\]"):
        _with_references(assignment, "test_double", [made[0], {**made[1], "name": "typo"}])
    with pytest.raises(SourceError, match="fails its own check 'accuracy'.*needs at least 0.9"):
        _with_references(assignment, "test_double", [record("accuracy", {"kind": "float", "value": 0.5}, at_least=0.9)])
    with pytest.raises(SourceError, match="more than one value"):
        _with_references(assignment, "test_double", [*made, made[1]])
    with pytest.raises(SourceError, match=r"threshold checks, which compare with no value: \['accuracy'\]"):
        _with_references(assignment, "test_double", [record("accuracy", {"kind": "float", "value": 0.95}, at_least=0.9),
                                                     {**made[1], "name": "accuracy"}])


def test_an_expect_record_from_a_student_run_is_ignored(course):
    """A student's code can call expect() too, in the test cell itself (from inside the graded
    function): it neither replaces the reference nor counts as a second record of the check."""
    assignment = load_assignment(course, "tiny")
    submission, _ = read_submission(SUBMISSIONS / "correct.ipynb", Limits())
    built, _ = assemble(assignment, submission)
    index = next(i for i, c in enumerate(built.cells) if grade_id(c) == "test_double")
    six, seven = {"kind": "int", "value": 6}, {"kind": "int", "value": 7}
    reference = Reference("tiny", "key", {"test_double": [record("double/3", six)],
                                          "test_mean": [record("mean/small", six)]})
    student = [{**record("double/3", seven), "cell": index},
               {"name": "double/3", "value": seven, "cell": index, "criteria": {"expect": True}}]
    scores = score_cells(assignment, reference, ExecutionOutcome("ok", "", "", student, 1.0), built)
    double = next(c for c in scores if c.grade_id == "test_double")
    assert [(k.name, k.passed) for k in double.checks] == [("double/3", False)]
    assert "more than once" not in double.checks[0].message


def built_tiny(course):
    """tiny as the grader runs it (correct.ipynb's answers), and the position of each cell with an id."""
    assignment = load_assignment(course, "tiny")
    submission, _ = read_submission(SUBMISSIONS / "correct.ipynb", Limits())
    built, _ = assemble(assignment, submission)
    return assignment, built, {grade_id(c): i for i, c in enumerate(built.cells) if grade_id(c)}


def test_a_test_cell_scores_its_share_of_the_checks_its_own_records_pass(course):
    """Points split evenly over a cell's checks (rounded to 4 places); a record counts only
    for the test cell that was running when it was made; nothing run scores 0."""
    assignment, built, at = built_tiny(course)
    six, seven = {"kind": "int", "value": 6}, {"kind": "int", "value": 7}
    reference = Reference("tiny", "key", {
        "test_double": [record("double/3", six), record("double/4", six), record("double/5", six)],
        "test_mean": [record("mean/small", six), record("mean/unchanged", six), record("mean/float64", six)]})
    student = [{**record("double/3", six), "cell": at["test_double"]},
               {**record("double/4", seven), "cell": at["test_double"]},
               {**record("double/5", seven), "cell": at["test_double"]},
               {**record("mean/small", six), "cell": at["test_mean"]},
               {**record("mean/unchanged", six), "cell": at["mean"]},  # forged from the answer cell
               {**record("mean/float64", six), "cell": len(built.cells) + 3}]  # from no cell of the notebook
    scores = score_cells(assignment, reference, ExecutionOutcome("ok", "", "", student, 1.0), built)
    assert [(c.grade_id, c.kind, c.points, c.score) for c in scores] == [
        ("test_double", "auto", 2.0, 0.6667), ("test_mean", "auto", 3.0, 1.0), ("q_mean", "manual", 1.0, None)]
    mean = next(c for c in scores if c.grade_id == "test_mean")
    assert [(k.name, k.passed) for k in mean.checks] == [("mean/small", True), ("mean/unchanged", False),
                                                          ("mean/float64", False)]
    nothing_ran = score_cells(assignment, reference, None, None)
    assert [(c.grade_id, c.score, c.checks) for c in nothing_ran] == [
        ("test_double", 0.0, []), ("test_mean", 0.0, []), ("q_mean", None, [])]


def test_a_test_cell_with_hidden_tests_quotes_nothing_its_code_recorded_or_raised(course):
    """The student's code called from the cell that holds the first hidden tests can read them
    (they are in its frames): neither its records nor its error's class or message are
    repeated, only the reference's value of a visible check."""
    assignment, built, at = built_tiny(course)
    built.cells[at["test_double"]].outputs = [
        nbformat.v4.new_output("error", ename="HiddenInput", evalue="torch.randn(5, 3)", traceback=[])]
    reference = Reference("tiny", "key", {"test_double": [record("double/3", {"kind": "int", "value": 6})],
                                          "test_mean": [record("mean/small", {"kind": "int", "value": 6})]})
    student = [{**record("double/3", {"kind": "int", "value": 12345}), "cell": at["test_double"]}]
    scores = score_cells(assignment, reference, ExecutionOutcome("ok", "", "", student, 1.0), built)
    double = next(c for c in scores if c.grade_id == "test_double")
    assert double.checks[0].message == "the value differs from the expected one; expected 6"
    assert double.error == ("an exception of a class defined in the notebook (its message is not shown: it was "
                            "raised after hidden tests had run, so your code could have copied them into it; "
                            "`validate` shows it)")
