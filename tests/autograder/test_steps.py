"""Fast tests of the individual steps: load, assemble, compare, release (collect: test_collect.py)."""

import copy
import io
import json
import os
import signal
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograder.assemble import WrongAssignmentError, assemble
from autograder.cells import grade_id
from autograder.checks import ENV_VAR, RECORDS_FILE, check
from autograder.config import Limits
from autograder.execute import TamperedFileError, read_job_file
from autograder.gradebook import GradebookWriter
from autograder.load import SubmissionError, read_submission
from autograder.records import CheckResult, compare
from autograder.release import release
from autograder.results import SubmissionResult
from autograder.sandbox import Cgroup
from autograder.source import SourceError, load_assignment
from tests.autograder.conftest import SUBMISSIONS, grade_written_answer, graded, submit


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def tensor(array, dtype=None, device="cpu"):
    array = np.asarray(array)
    return {"kind": "tensor", "dtype": dtype or str(array.dtype), "device": device, "shape": list(array.shape), "npy": npy(array)}


def ref(value, **criteria):
    return {"name": "x", "value": value, "criteria": {"rtol": 1e-4, "atol": 1e-6, "at_least": None, "at_most": None, **criteria}}


@pytest.mark.parametrize(("fixture", "message"), [
    ("empty", "empty"), ("corrupted", "not valid JSON"), ("not_a_notebook", "not a Jupyter notebook"),
])
def test_unreadable_submissions_say_why(fixture, message):
    with pytest.raises(SubmissionError, match=message):
        read_submission(SUBMISSIONS / f"{fixture}.ipynb", Limits())


def test_oversized_notebook_is_not_read(tmp_path):
    big = tmp_path / "big.ipynb"
    big.write_bytes(b" " * (2 * 2**20))
    with pytest.raises(SubmissionError, match="over the 1 MiB limit"):
        read_submission(big, Limits(max_notebook_bytes=2**20))


def test_old_nbformat_is_upgraded():
    nb, notes = read_submission(SUBMISSIONS / "old_nbformat.ipynb", Limits())
    assert nb.nbformat == 4 and "nbformat 3" in notes[0]


def test_assemble_takes_tests_from_source_and_answers_from_student(course):
    assignment = load_assignment(course, "tiny")
    nb, _ = read_submission(SUBMISSIONS / "tampered.ipynb", Limits())
    built, notes = assemble(assignment, nb)
    by_id = {grade_id(c): c for c in built.cells if grade_id(c)}
    source = {grade_id(c): c for c in assignment.notebook.cells if grade_id(c)}
    assert by_id["test_double"].source == source["test_double"].source  # hidden tests restored
    assert by_id["double"].source == "def double(x):\n    return 0"
    ids = [grade_id(c) for c in built.cells if grade_id(c)]
    assert ids == [grade_id(c) for c in assignment.notebook.cells if grade_id(c)]  # the source's order
    assert not notes


def test_assemble_keeps_student_helpers_after_their_answer(course):
    assignment = load_assignment(course, "tiny")
    nb, _ = read_submission(SUBMISSIONS / "extra_helper.ipynb", Limits())
    built, _ = assemble(assignment, nb)
    sources = [c.source for c in built.cells]
    helper = sources.index("def _twice(x):\n    return x + x")
    assert helper < [grade_id(c) for c in built.cells].index("test_double")


def test_assemble_rejects_another_assignment(course):
    nb, _ = read_submission(SUBMISSIONS / "other_assignment.ipynb", Limits())
    with pytest.raises(WrongAssignmentError, match="none of the answer cells"):
        assemble(load_assignment(course, "tiny"), nb)


def test_missing_answer_is_noted(course):
    nb, _ = read_submission(SUBMISSIONS / "missing_answer.ipynb", Limits())
    built, notes = assemble(load_assignment(course, "tiny"), nb)
    assert notes == ["answer cell 'mean' is missing from the submission"]
    placeholder = next(c.source for c in built.cells if grade_id(c) == "mean")
    with pytest.raises(NotImplementedError, match="answer cell 'mean' is missing from the submission"):
        exec(compile(placeholder, "placeholder", "exec"), {})  # valid Python that says what happened


def test_only_a_missing_answer_makes_a_submission_a_problem_not_an_id_that_says_missing(course, tmp_path):
    """An answer named ``missing_mean`` that appears twice is graded (first copy), not reported missing."""
    from autograder.grade import _prepare

    source = course.solutions / "tiny" / "tiny.ipynb"
    source.write_text(source.read_text().replace('"grade_id": "mean"', '"grade_id": "missing_mean"'))
    nb = nbformat.reads((SUBMISSIONS / "correct.ipynb").read_text().replace(
        '"grade_id": "mean"', '"grade_id": "missing_mean"'), as_version=4)
    answer = next(i for i, c in enumerate(nb.cells) if grade_id(c) == "missing_mean")
    duplicate = copy.deepcopy(nb.cells[answer])
    duplicate.id = "pasted-again"
    nb.cells.insert(answer + 1, duplicate)
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    result, runnable = _prepare(load_assignment(course, "tiny"), "amy", path, course)
    assert result.notes == ["answer cell 'missing_mean' appears more than once; the first one was graded"]
    assert (result.status, result.problems, runnable is not None) == ("graded", [], True)


def test_an_added_cell_runs_where_the_student_put_it(course):
    """A cell below a test runs after that test, as in the student's own run (and validate's):
    an experiment that redefines an answer must not change the test above it."""
    assignment = load_assignment(course, "tiny")
    nb, _ = read_submission(SUBMISSIONS / "correct.ipynb", Limits())
    position = [grade_id(c) for c in nb.cells].index("test_double")
    nb.cells.insert(position + 1, nbformat.v4.new_code_cell("def double(x):\n    return 'experiment'"))
    built, _ = assemble(assignment, nb)
    sources = [c.source for c in built.cells]
    ids = [grade_id(c) for c in built.cells]
    assert sources.index("def double(x):\n    return 'experiment'") == ids.index("test_double") + 1


def test_added_text_cells_and_empty_code_cells_are_not_run(course):
    """Only code the student added runs: a markdown note or an empty code cell adds no cell."""
    assignment = load_assignment(course, "tiny")
    nb, _ = read_submission(SUBMISSIONS / "correct.ipynb", Limits())
    plain, _ = assemble(assignment, nb)
    position = [grade_id(c) for c in nb.cells].index("double")
    nb.cells[position + 1:position + 1] = [nbformat.v4.new_markdown_cell("x = 1  # my notes"),
                                           nbformat.v4.new_code_cell("  \n")]
    built, _ = assemble(assignment, nb)
    assert [(c.cell_type, c.source) for c in built.cells] == [(c.cell_type, c.source) for c in plain.cells]


def test_an_added_cell_brings_its_code_only(course):
    """A "parameters" tag on a cell of the student's would move where papermill injects the
    grader's parameters (below it, so the source's defaults would win); "raises-exception"
    and "skip-execution" change how nbclient runs a cell. Added cells keep their code only."""
    assignment = load_assignment(course, "tiny")
    nb, _ = read_submission(SUBMISSIONS / "correct.ipynb", Limits())
    for tag in ("parameters", "injected-parameters", "skip-execution"):
        nb.cells.append(nbformat.v4.new_code_cell(f"seed = 0  # {tag}", metadata={"tags": [tag]}))
    built, _ = assemble(assignment, nb)
    added = [c for c in built.cells if c.source.startswith("seed = 0  #")]
    assert len(added) == 3 and all(not c.metadata for c in added)
    tagged = [c for c in built.cells if "parameters" in c.metadata.get("tags", [])]
    assert [c.source for c in tagged] == [c.source for c in assignment.notebook.cells
                                          if "parameters" in c.metadata.get("tags", [])]


def test_compare_tensors():
    expected = tensor(np.array([1.0, 2.0], dtype=np.float32))
    assert compare(ref(expected), [{"value": tensor(np.array([1.0, 2.00001], dtype=np.float32))}]).passed
    assert "dtype" in compare(ref(expected), [{"value": tensor(np.array([1.0, 2.0]))}]).message
    assert "shape" in compare(ref(expected), [{"value": tensor(np.array([[1.0, 2.0]], dtype=np.float32))}]).message
    assert "on cpu, got one on cuda" in compare(ref(expected), [{"value": tensor(np.array([1.0, 2.0], dtype=np.float32), device="cuda")}]).message
    assert "NaN" in compare(ref(expected), [{"value": tensor(np.array([1.0, np.nan], dtype=np.float32))}]).message
    assert compare(ref(expected), [{"value": tensor(np.array([1.0, 3.0], dtype=np.float32))}]).message == (
        "values differ from the expected ones (largest difference 1; tolerance rtol=0.0001, atol=1e-06)")


def test_compare_integer_tensors_exactly_and_arrays_as_they_are_not_as_declared():
    labels = ref(tensor(np.array([1, 2, 3])))
    assert compare(labels, [{"value": tensor(np.array([1, 2, 3]))}]) == CheckResult("x", True, "")
    assert compare(labels, [{"value": tensor(np.array([1, 2, 4]))}]) == CheckResult(
        "x", False, "values differ from the expected ones")
    assert not compare(ref(tensor(np.array([True, False]))), [{"value": tensor(np.array([True, True]))}]).passed
    declared = {**tensor(np.array([1, 2, 3, 4])), "shape": [3]}  # a forged record: its header says (3,)
    assert compare(labels, [{"value": declared}]) == CheckResult(
        "x", False, "the recorded array does not match its declared shape")


def test_compare_infinities_nans_and_values_of_another_kind():
    inf = ref(tensor(np.array([1.0, np.inf], dtype=np.float32)))
    assert compare(inf, [{"value": tensor(np.array([1.0, np.inf], dtype=np.float32))}]).passed
    assert compare(inf, [{"value": tensor(np.array([1.0, -np.inf], dtype=np.float32))}]) == CheckResult(
        "x", False, "infinite values where finite ones were expected (or the reverse)")
    half, nan = ref({"kind": "float", "value": 0.5}), ref({"kind": "float", "value": float("nan")})
    assert compare(half, [{"value": {"kind": "float", "value": float("nan")}}]) == CheckResult("x", False, "NaN mismatch")
    assert compare(nan, [{"value": {"kind": "float", "value": 0.5}}]) == CheckResult("x", False, "NaN mismatch")
    assert compare(nan, [{"value": {"kind": "float", "value": float("nan")}}]).passed
    six, one = ref({"kind": "int", "value": 6}), ref({"kind": "int", "value": 1})
    assert compare(six, [{"value": {"kind": "float", "value": 6.0001}}]).passed  # an int against a float: tolerance
    assert compare(ref({"kind": "float", "value": 6.0001}), [{"value": {"kind": "int", "value": 6}}]).passed
    assert compare(ref({"kind": "bool", "value": True}), [{"value": {"kind": "int", "value": 1}}]).message == (
        "expected a bool, got an int")
    assert compare(ref({"kind": "bool", "value": True}), [{"value": {"kind": "bool", "value": False}}]).message == (
        "expected True, got False")
    assert compare(one, [{"value": {"kind": "bool", "value": True}}]).message == "expected a number, got a bool"
    assert compare(six, [{"value": tensor(np.int64(6))}]).message == "expected a number, got a tensor"
    assert compare(ref({"kind": "sequence", "items": [six["value"]]}), [{"value": six["value"]}]) == CheckResult(
        "x", False, "expected a sequence, got an int")
    assert compare(ref({"kind": "str", "value": "True"}), [{"value": {"kind": "bool", "value": True}}]).message == (
        "expected a str, got a bool")
    wide = ref(tensor(np.array([1e-5, 2e6, 0.0, 0.5, 0.123456, np.inf])))
    assert compare(wide, [{"value": tensor(np.array([1e-5, 2e6, 0.0, 0.25, 0.123456, np.inf]))}], visible=True
                   ).message.endswith("; expected [1e-05, 2e+06, 0., 0.5, 0.1235, inf], got [1e-05, 2e+06, 0., 0.25, 0.1235, inf]")
    twelve = ref(tensor(np.arange(12, dtype=np.float32)))  # up to 12 values are shown, even after hidden tests
    assert compare(twelve, [{"value": tensor(np.zeros(12, dtype=np.float32))}], visible=True, messages=False
                   ).message.endswith("; expected [0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11.]")


def test_visible_checks_show_the_expected_value_and_hidden_ones_never_do():
    small = ref(tensor(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)))
    got = [{"value": tensor(np.array([[1.0, 2.0], [3.0, 5.0]], dtype=np.float32))}]
    assert compare(small, got, visible=True).message.endswith("; expected [[1., 2.], [3., 4.]], got [[1., 2.], [3., 5.]]")
    assert "expected [" not in compare(small, got).message
    big = np.arange(30, dtype=np.float32).reshape(5, 6)
    wrong = big.copy()
    wrong[2, 3], wrong[4, 0] = -1.0, -2.0
    message = compare(ref(tensor(big)), [{"value": tensor(wrong)}], visible=True).message
    assert message.endswith("; first at index (2, 3): expected 15, got -1 (2 of 30 entries differ)")
    number = ref({"kind": "float", "value": 0.25})
    assert compare(number, [{"value": {"kind": "float", "value": 0.5}}], visible=True).message == (
        "got 0.5, which differs from the expected value; expected 0.25")
    assert "0.25" not in compare(number, [{"value": {"kind": "float", "value": 0.5}}]).message
    pair = ref({"kind": "sequence", "items": [tensor(np.array([1.0])), {"kind": "str", "value": "ok"}]})
    got_pair = [{"value": {"kind": "sequence", "items": [tensor(np.array([1.0])), {"kind": "str", "value": "no"}]}}]
    assert compare(pair, got_pair, visible=True).message == (
        "item [1]: the value differs from the expected one; expected 'ok', got 'no'")
    assert compare(ref({"kind": "str", "value": "ok"}), [{"value": {"kind": "int", "value": 6}}], visible=True).message == (
        "expected a str, got an int; expected 'ok', got 6")
    fits, long = "a" * 78, "b" * 79  # a value is quoted whole up to 80 characters (its quotes included)
    assert compare(ref({"kind": "str", "value": fits}), [{"value": {"kind": "str", "value": "no"}}], visible=True
                   ).message.endswith(f"; expected '{fits}', got 'no'")
    assert compare(ref({"kind": "str", "value": long}), [{"value": {"kind": "str", "value": "no"}}], visible=True
                   ).message.endswith(f"; expected '{long[:76]}..., got 'no'")
    nested = ref({"kind": "sequence", "items": [pair["value"]]})
    got_nested = [{"value": {"kind": "sequence", "items": [got_pair[0]["value"]]}}]
    assert compare(nested, got_nested).message == "item [0][1]: the value differs from the expected one"


def test_after_hidden_tests_no_message_repeats_what_the_student_recorded():
    """Code that ran after hidden tests could have copied them into what it records: the
    feedback then repeats no recorded number, shape, string or name, only the reference's
    own values (for visible checks) and words from fixed lists."""
    secret = [{"value": tensor(np.array([[72.0, 105.0], [100.0, 101.0]], dtype=np.float32))}]
    small = ref(tensor(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)))
    assert compare(small, secret, visible=True, messages=False).message == (
        "values differ from the expected ones (tolerance rtol=0.0001, atol=1e-06); expected [[1., 2.], [3., 4.]]")
    big = ref(tensor(np.zeros((5, 6), dtype=np.float32)))
    leaked = np.zeros((5, 6), dtype=np.float32)
    leaked[3, 4] = 12345.0
    message = compare(big, [{"value": tensor(leaked)}], visible=True, messages=False).message
    assert message == "values differ from the expected ones (tolerance rtol=0.0001, atol=1e-06)"
    records = {  # each carries 12345 (or 'hidden') somewhere a message used to repeat it
        "shape": (small, tensor(np.zeros((12345, 1), dtype=np.float32))),
        "device": (small, tensor(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32), device="hidden")),
        "float": (ref({"kind": "float", "value": 0.25}), {"kind": "float", "value": 12345.0}),
        "int": (ref({"kind": "int", "value": 6}), {"kind": "int", "value": 12345}),
        "items": (ref({"kind": "sequence", "items": []}), {"kind": "sequence", "items": [{"kind": "none"}] * 12345}),
        "str": (ref({"kind": "str", "value": "ok"}), {"kind": "str", "value": "hidden"}),
        "bool": (ref({"kind": "bool", "value": True}), {"kind": "bool", "value": "hidden"}),
        "kind": (small, {"kind": "hidden"}),
        "threshold": (ref({"kind": "float", "value": 0.9}, at_least=0.8), {"kind": "float", "value": 0.12345}),
        "error": (small, {"kind": "str", "value": "error: hidden: 12345"}),
        # which item differs is the record's choice: item [12345] would carry the number
        "item": (ref({"kind": "sequence", "items": [{"kind": "int", "value": 0}] * 12346}),
                 {"kind": "sequence", "items": [{"kind": "int", "value": 0}] * 12345 + [{"kind": "int", "value": 1}]}),
    }
    for label, (reference, got) in records.items():
        for visible in (True, False):
            message = compare(reference, [{"value": got}], visible=visible, messages=False).message
            assert "12345" not in message and "hidden" not in message, (label, message)
            assert message, label  # still says what is wrong
    # Before hidden tests the same records are quoted: they help the student find the bug.
    assert "got 12345" in compare(records["int"][0], [{"value": records["int"][1]}], visible=True).message
    assert "(12345, 1)" in compare(small, [{"value": records["shape"][1]}]).message
    # A measure's result is the grader's own number: shown either way.
    threshold = ref({"kind": "sequence", "items": []}, at_least=0.85, measure="no_such_measure")
    assert "unknown measure" in compare(threshold, [{"value": {"kind": "sequence", "items": []}}], messages=False).message


def test_a_recorded_error_says_what_was_raised_with_its_message_only_if_visible():
    expected = ref(tensor(np.array([1.0, 2.0])))
    error = [{"value": {"kind": "str", "value": "error: ValueError: shape (7, 4) is wrong"}}]
    assert compare(expected, error, visible=True).message == "the computation raised ValueError: shape (7, 4) is wrong"
    assert compare(expected, error) == CheckResult("x", False, "the computation raised ValueError")  # a hidden input stays hidden
    text = ref({"kind": "str", "value": "error: ValueError: bad"})  # an error the solution also raised
    assert compare(text, [{"value": {"kind": "str", "value": "error: ValueError: bad"}}]).passed


def test_only_literal_check_names_outside_hidden_tests_are_visible(course):
    cells = {c.grade_id: c for c in load_assignment(course, "tiny").graded_cells}
    assert cells["test_double"].visible_checks == frozenset({"double/3"})
    assert cells["test_mean"].visible_checks == frozenset({"mean/small", "mean/unchanged"})


def test_compare_rejects_duplicates_missing_and_rigged_values():
    expected = ref({"kind": "int", "value": 6})
    assert compare(expected, [{"value": {"kind": "int", "value": 6}}]).passed
    assert not compare(expected, []).passed
    assert compare(expected, [{"value": {"kind": "int", "value": 6}}] * 2) == CheckResult(
        "x", False, "recorded more than once: a test's checks run exactly once")
    assert not compare(expected, [{"value": {"kind": "unsupported", "type": "Always"}}]).passed
    assert not compare(expected, [{"value": {"kind": "str", "value": "6"}}]).passed


class _Touch:
    """Unpickling it creates a file: what a pickled object in a record could do to the grader."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_recorded_array_is_never_unpickled(tmp_path):
    buffer = io.BytesIO()
    np.save(buffer, np.array([_Touch(tmp_path / "ran")], dtype=object), allow_pickle=True)
    forged = {"kind": "tensor", "dtype": "float32", "device": "cpu", "shape": [1], "npy": buffer.getvalue()}
    result = compare(ref(tensor(np.array([1.0], dtype=np.float32))), [{"value": forged}])
    assert result == CheckResult("x", False, "the recorded value could not be read (ValueError)")
    assert not (tmp_path / "ran").exists()


def test_a_threshold_takes_a_number_or_a_tensor_of_one_number_only():
    at_least = ref({"kind": "float", "value": 0.95}, at_least=0.8)
    for one in (np.float32(0.9), np.array([0.9], dtype=np.float32), np.int64(1)):
        result = compare(at_least, [{"value": tensor(one)}])
        assert result.passed and result.message in ("0.9", "1"), one
    for many in (np.array([0.9, 0.1], dtype=np.float32), np.array([[0.9]], dtype=np.float32)):
        assert compare(at_least, [{"value": tensor(many)}]) == CheckResult("x", False, "expected a number, got a tensor")
    assert compare(at_least, [{"value": {"kind": "str", "value": "0.9"}}]).message == "expected a number, got a str"
    assert compare(at_least, [{"value": {"kind": "float", "value": float("nan")}}]) == CheckResult(
        "x", False, "expected a number, got a float")
    assert compare(at_least, [{"value": {"kind": "float", "value": 0.8}}]) == CheckResult("x", True, "0.8")
    assert compare(at_least, [{"value": {"kind": "float", "value": 0.5}}], messages=False) == CheckResult(
        "x", False, "needs at least 0.8")  # after hidden tests the recorded number is not repeated
    at_most = ref({"kind": "float", "value": 0.1}, at_most=0.2)
    assert compare(at_most, [{"value": {"kind": "float", "value": 0.2}}]) == CheckResult("x", True, "0.2")
    assert compare(at_most, [{"value": {"kind": "float", "value": 0.5}}]) == CheckResult(
        "x", False, "got 0.5, needs at most 0.2")


def test_a_declared_shape_that_is_not_a_list_of_integers_is_not_repeated():
    expected = ref(tensor(np.array([1.0, 2.0], dtype=np.float32)))
    for shape in (["2", "x"], {"a": 1}):
        got = {**tensor(np.array([1.0, 2.0], dtype=np.float32)), "shape": shape}
        assert compare(expected, [{"value": got}]).message == "expected shape (2,), got (not a shape)", shape


def test_thresholds_come_from_the_reference():
    threshold = ref({"kind": "float", "value": 0.95}, at_least=0.8)
    assert compare(threshold, [{"value": {"kind": "float", "value": 0.81}, "criteria": {"at_least": 0.0}}]).passed
    assert not compare(threshold, [{"value": {"kind": "float", "value": 0.5}, "criteria": {"at_least": 0.0}}]).passed


def test_a_passing_check_has_an_empty_message():
    """Every kind of value that matches passes with nothing to say (not a missing message)."""
    floats = tensor(np.array([1.0, 2.0], dtype=np.float32))
    assert compare(ref(floats), [{"value": floats}]) == CheckResult("x", True, "")
    pair = {"kind": "sequence", "items": [{"kind": "int", "value": 6}, {"kind": "str", "value": "ok"}]}
    assert compare(ref(pair), [{"value": pair}]) == CheckResult("x", True, "")
    assert compare(ref({"kind": "float", "value": 0.5}), [{"value": {"kind": "float", "value": 0.50000001}}]
                   ) == CheckResult("x", True, "")
    assert compare(ref({"kind": "str", "value": "ok"}), [{"value": {"kind": "str", "value": "ok"}}]
                   ) == CheckResult("x", True, "")


def test_a_reference_that_cannot_be_compared_fails_the_check():
    """A reference of a kind no comparison takes, or a number that is not one, scores nothing."""
    six = [{"value": {"kind": "int", "value": 6}}]
    assert compare(ref({"kind": "unsupported", "type": "dict"}), six) == CheckResult(
        "x", False, "cannot compare values of kind unsupported")
    assert compare(ref({"kind": "float", "value": "six"}), six) == CheckResult(
        "x", False, "the expected value is not a number")


def test_without_criteria_the_tolerance_is_rtol_1e_4_and_atol_1e_6():
    """A reference that states no tolerance gets the defaults of ``check``."""
    thousand = {"name": "x", "value": {"kind": "float", "value": 1000.0}}
    zero = {"name": "x", "value": {"kind": "float", "value": 0.0}}
    assert compare(thousand, [{"value": {"kind": "float", "value": 1000.05}}]).passed
    assert compare(thousand, [{"value": {"kind": "float", "value": 1000.5}}]) == CheckResult(
        "x", False, "got 1000.5, which differs from the expected value")
    assert compare(zero, [{"value": {"kind": "float", "value": 5e-7}}]).passed
    assert compare(zero, [{"value": {"kind": "float", "value": 1e-5}}]) == CheckResult(
        "x", False, "got 1e-05, which differs from the expected value")


def test_up_to_12_floats_are_shown_whole_more_from_the_first_that_differs():
    """A visible float tensor of 12 values is quoted whole; from 13 on, the message names the
    first entry that differs (entries NaN in both agree) and counts them; after hidden tests
    a tensor of 13 values is not shown at all."""
    twelve = np.arange(12, dtype=np.float32)
    wrong = twelve.copy()
    wrong[5] = -1.0
    assert compare(ref(tensor(twelve)), [{"value": tensor(wrong)}], visible=True).message.endswith(
        "; expected [0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11.], "
        "got [0., 1., 2., 3., 4., -1., 6., 7., 8., 9., 10., 11.]")
    thirteen, got = np.arange(13, dtype=np.float32), np.arange(13, dtype=np.float32)
    thirteen[0] = got[0] = np.nan
    got[5] = -1.0
    assert compare(ref(tensor(thirteen)), [{"value": tensor(got)}], visible=True).message.endswith(
        "; first at index (5,): expected 5, got -1 (1 of 13 entries differ)")
    assert compare(ref(tensor(thirteen)), [{"value": tensor(got)}], visible=True, messages=False).message == (
        "values differ from the expected ones (tolerance rtol=0.0001, atol=1e-06)")


def test_shown_floats_are_positional_from_1e_4_to_below_1e4_in_4_significant_digits():
    """The expected values of a visible check: 4 significant digits, positional in [1e-4, 1e4)
    (beyond, rounding would show a wrong digit as 0: 12345 as "12340."), scientific outside,
    and no more digits than the dtype holds."""
    values = np.array([1e-4, 9.99e-5, 9999.0, 1e4, 12345.0, 1e6, 123.456])
    assert compare(ref(tensor(values)), [{"value": tensor(np.zeros(7))}], visible=True).message.endswith(
        "; expected [0.0001, 9.99e-05, 9999., 1e+04, 1.234e+04, 1e+06, 123.5], got [0., 0., 0., 0., 0., 0., 0.]")
    half = np.array([70.6], dtype=np.float16)  # 70.625 exactly: float16 prints it as 70.6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a float16 compared with 1e4 overflowed
        message = compare(ref(tensor(half)), [{"value": tensor(np.zeros(1, np.float16))}], visible=True).message
    assert message.endswith("; expected [70.6], got [0.]")


def test_integer_and_boolean_arrays_over_12_values_name_the_first_entry_that_differs():
    """Beyond 12 values an array is shown abbreviated, which could hide the difference: the
    message names the first entry that differs, as for floats."""
    expected, got = np.arange(13), np.arange(13)
    got[5] = -1
    assert compare(ref(tensor(expected)), [{"value": tensor(got)}], visible=True).message == (
        "values differ from the expected ones; first at index (5,): expected 5, got -1 (1 of 13 entries differ)")
    flags = np.zeros((2, 7), dtype=bool)
    flipped = flags.copy()
    flipped[1, 3] = flipped[1, 4] = True
    assert compare(ref(tensor(flags)), [{"value": tensor(flipped)}], visible=True).message.endswith(
        "; first at index (1, 3): expected False, got True (2 of 14 entries differ)")


def test_source_must_record_checks(course):
    path = course.solutions / "tiny" / "tiny.ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if grade_id(cell) == "test_double":
            cell.source = "assert double(3) == 6"
    nbformat.write(nb, path)
    with pytest.raises(SourceError, match="records no check"):
        load_assignment(course, "tiny")


def test_release_strips_solutions_and_hidden_tests(course):
    text = release(course, "tiny").read_text()
    assert "return 2 * x" not in text and "torch.randn(5, 3)" not in text and "Rows are examples" not in text
    assert json.loads(text)["cells"]


def test_the_gradebook_knows_an_assignment_released_with_the_same_graded_cells(course):
    """grade releases an assignment the gradebook lacks, or whose graded cells changed since."""
    tiny = load_assignment(course, "tiny")
    with GradebookWriter(course) as gb:
        assert not gb.has_assignment(tiny)
    release(course, "tiny")
    with GradebookWriter(course) as gb:
        assert gb.has_assignment(tiny)
        assert not gb.has_assignment(replace(tiny, graded_cells=tiny.graded_cells[:2]))


def test_the_gradebook_gives_a_submissions_standing_with_the_instructors_grades(course):
    """What grade reports after a run: the score with manual grades, and whether any answer still waits."""
    graded(course, "amy", 2.0)
    with GradebookWriter(course) as gb:
        assert gb.has_submission("tiny", "amy") and not gb.has_submission("tiny", "ben")
        assert gb.standing("tiny", "amy") == (5.0, True) and gb.scores("tiny") == {"amy": 5.0}
    grade_written_answer(course, "amy", 0.5)
    with GradebookWriter(course) as gb:
        assert gb.standing("tiny", "amy") == (5.5, False) and gb.scores("tiny") == {"amy": 5.5}


def test_a_released_notebook_lists_its_tests_and_answers_and_follows_edits_of_the_source(course):
    """validate compares a student's notebook with these lists; a source fixed after a first
    release is released again, not skipped as nbgrader does without force."""
    path = release(course, "tiny")
    assert nbformat.read(path, as_version=4).metadata["autograder"] == {
        "assignment": "tiny", "tests": ["test_double", "test_mean"], "answers": ["double", "mean", "q_mean"]}
    source = course.solutions / "tiny" / "tiny.ipynb"
    source.write_text(source.read_text().replace("Write `double` and `mean`.", "Write `double`, then `mean`."))
    assert "Write `double`, then `mean`." in release(course, "tiny").read_text()


def test_a_source_nbgrader_cannot_release_names_the_exception_and_the_notebook(course):
    source = course.solutions / "tiny" / "tiny.ipynb"
    source.write_text(source.read_text().replace("### END SOLUTION", "", 1))  # an unclosed solution
    with pytest.raises(SourceError) as error:
        release(course, "tiny")
    assert str(error.value) == f"nbgrader could not release tiny: RuntimeError: no end solution statement found (in {source})"


def test_a_submission_that_keeps_killing_its_worker_is_retried_then_failed(course, monkeypatch):
    """The runner process of one submission dies every time; the others are graded."""
    from autograder import grade as grade_module
    from autograder.execute import ExecutionOutcome
    from autograder.grade import GradeOptions, grade
    from tests.autograder.conftest import submit

    calls: dict[str, int] = {}
    real_execute = grade_module.execute

    def flaky(job):
        calls[job.label] = calls.get(job.label, 0) + 1
        if job.label == "crasher":
            return ExecutionOutcome("killed", "the grading process was killed (exit status -9)", None, [], 0.1)
        return real_execute(job)

    monkeypatch.setattr(grade_module, "execute", flaky)
    submit(course, "crasher", "correct")
    submit(course, "fine", "correct")
    report = grade(course, "tiny", GradeOptions(workers=1, progress=False, device="cpu"))
    results = {r.student: r for r in report.results}
    assert calls["crasher"] == grade_module.MAX_ATTEMPTS
    assert results["crasher"].status == "failed" and "gave up" in results["crasher"].problems[0]
    assert results["fine"].score == 5.0


class MemoryGradebook:
    """What grade writes to nbgrader's gradebook, in memory (opening and filling nbgrader's takes seconds)."""

    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []  # (student, status) in the order they were recorded
        self.known: dict[str, str] = {}  # student -> submitted_at of their submission in this gradebook
        self.released = 0  # how often grade released the assignment into it

    def __call__(self, course):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def release(self, course, name):  # what grade's release does for the gradebook
        self.released += 1

    def has_assignment(self, assignment):
        return self.released > 0

    def record(self, assignment, result):
        self.recorded.append((result.student, result.status))
        self.known[result.student] = result.submitted_at

    def has_submission(self, assignment, student):
        return student in self.known

    def standing(self, assignment, student):
        return (float(len(student)), False)


@pytest.fixture
def fast_grade(course, monkeypatch):
    """grade() with the notebooks' runs faked: each job "runs" as ``outcomes[student]`` says, a list
    of ``(status, message[, executed notebook])``, one per attempt, the last repeated (a status that
    is an exception is raised, as by a worker that died); by default ok, the notebook as sent. The
    solution has one check per test, which a faked run never records (every test scores 0)."""
    from autograder import grade as grade_module
    from autograder.execute import ExecutionOutcome
    from autograder.reference import Reference

    jobs, outcomes = [], {}
    gradebook = MemoryGradebook()

    def fake_execute(job):
        jobs.append(job)
        planned = outcomes.get(job.label, [("ok", "")])
        status, message, *notebook = planned[min(len([j for j in jobs if j.label == job.label]), len(planned)) - 1]
        if isinstance(status, Exception):
            raise status
        return ExecutionOutcome(status, message, notebook[0] if notebook else job.notebook, [], 1.5, "host-1")

    def reference(course, assignment, parameters, run, on_run):
        solution = {"name": "x", "value": {"kind": "int", "value": 1}, "criteria": {}}
        return Reference(assignment.name, f"key-{parameters['seed']}",
                         {g.grade_id: [solution] for g in assignment.graded_cells})

    monkeypatch.setattr(grade_module, "execute", fake_execute)
    monkeypatch.setattr(grade_module, "reference_for", reference)
    monkeypatch.setattr(grade_module, "GradebookWriter", gradebook)
    monkeypatch.setattr(grade_module, "release", gradebook.release)

    def run(**options):
        options = {"progress": False, "device": "cpu", **options}
        report = grade_module.grade(course, "tiny", grade_module.GradeOptions(**options))
        return report, {r.student: r for r in report.results}

    run.jobs, run.outcomes, run.gradebook, run.course = jobs, outcomes, gradebook, course
    return run


def test_grade_runs_records_and_reports_each_submission(fast_grade, capsys):
    course = fast_grade.course
    for student, fixture in [("amy", "correct"), ("bob", "missing_answer"), ("cat", "rigged"), ("dan", "corrupted")]:
        submit(course, student, fixture)
    (course.submitted / "eve" / "tiny").mkdir(parents=True)  # no notebook
    report, results = fast_grade(workers=2, seed=3, quick=False, data_source="online")
    assert sorted(results) == ["amy", "bob", "cat", "dan", "eve"]
    assert {s: r.status for s, r in results.items()} == {
        "amy": "graded", "bob": "problem", "cat": "problem", "dan": "failed", "eve": "failed"}
    assert sorted(j.label for j in fast_grade.jobs) == ["amy", "bob", "cat"]  # nothing to run for dan and eve
    assert all(j.parameters == {"device": "cpu", "seed": 3, "data_source": "online", "quick": False}
               and j.gpu is None for j in fast_grade.jobs)
    assert results["amy"].problems == [] and results["amy"].reference == "key-3"
    assert (results["amy"].seconds, results["amy"].host) == (1.5, "host-1")
    assert results["bob"].problems == ["answer cells are missing from the submission"]
    assert results["cat"].problems[0].startswith("for review: the notebook's own code reaches into the grading")
    assert "not valid JSON" in results["dan"].problems[0]
    assert results["eve"].problems == [
        "no notebook found: expected submitted/<student>/<assignment>/<assignment>.ipynb"]
    assert [c.score for c in results["eve"].cells] == [0.0, 0.0, None]
    assert sorted(fast_grade.gradebook.recorded) == sorted((s, r.status) for s, r in results.items())
    assert report.standings == {s: (float(len(s)), False) for s in results}
    for student, result in results.items():  # the files, as the gradebook's
        assert SubmissionResult.load(course.autograded / student / "tiny" / "result.json") == result
    kept = sorted(p.parent.parent.name for p in course.autograded.glob("*/tiny/tiny.ipynb"))
    assert kept == ["amy", "bob", "cat"]  # the executed notebooks, of the runs that made one
    assert fast_grade.gradebook.released == 1 and capsys.readouterr().err == ""  # no progress bar when asked
    assert sorted(r.student for r in report.problems) == ["bob", "cat", "dan", "eve"]
    again, _ = fast_grade(workers=2, seed=3, quick=False, data_source="online")
    assert fast_grade.gradebook.released == 1  # the gradebook knows the assignment now
    assert sorted(again.skipped) == ["amy", "bob", "cat", "dan"]  # eve's missing notebook is looked for again
    assert sorted(r.student for r in again.problems) == ["bob", "cat", "dan", "eve"]  # a rerun keeps them


def test_grade_retries_a_killed_run_up_to_three_times_and_flags_a_stopped_one(fast_grade):
    for student in ("amy", "bob", "cat", "dan", "eve", "fay", "gus"):
        submit(fast_grade.course, student, "correct")
    executed = nbformat.reads((SUBMISSIONS / "correct.ipynb").read_text(), as_version=4)
    test = next(c for c in executed.cells if grade_id(c) == "test_double")
    test.outputs = [nbformat.v4.new_output("error", ename="KeyboardInterrupt", evalue="", traceback=[])]
    fast_grade.outcomes.update({
        "amy": [("killed", "the runner was killed", None)],  # every time
        "bob": [("killed", "the runner was killed", None), ("ok", "")],  # once: the second run counts
        "cat": [(RuntimeError("KilledWorker"), "")],  # the worker itself died
        "dan": [("timeout", "the notebook ran out of time", nbformat.writes(executed))],
        "eve": [("tampered", "the records were rewritten", None)],
        "fay": [("kernel_died", "the kernel died", None)],
        "gus": [("ok", "", "{not json")],  # cut short while writing the notebook
    })
    _, results = fast_grade(workers=1)
    assert {j.parameters["quick"] for j in fast_grade.jobs} == {True}  # quick training runs unless told otherwise
    attempts = {s: sum(j.label == s for j in fast_grade.jobs) for s in results}
    assert attempts == {"amy": 3, "bob": 2, "cat": 3, "dan": 1, "eve": 1, "fay": 1, "gus": 1}
    assert {s: r.status for s, r in results.items()} == {
        "amy": "failed", "bob": "graded", "cat": "failed", "dan": "problem", "eve": "problem", "fay": "failed",
        "gus": "problem"}
    assert results["amy"].problems == ["the runner was killed (killed its worker 3 times; gave up)"]
    assert results["cat"].problems == [
        "the worker running it died: RuntimeError: KilledWorker (killed its worker 3 times; gave up)"]
    assert results["dan"].problems == ["stopped at the time limit per cell: test_double",
                                       "the notebook ran out of time"]
    assert results["eve"].problems == ["the records were rewritten"]
    assert results["fay"].problems == ["the kernel died"] and results["bob"].problems == []
    assert (results["cat"].seconds, results["bob"].seconds) == (0.0, 1.5)  # a worker that died timed nothing
    assert results["gus"].problems == ["the executed notebook could not be read back (the run was cut short while "
                                       "writing it): no test result could be placed"]


def test_grade_skips_a_submission_graded_before_unless_it_or_the_reference_changed(fast_grade):
    course = fast_grade.course
    for student in ("amy", "bob", "cat"):
        submit(course, student, "correct")
    first, _ = fast_grade(workers=1)
    assert len(first.results) == 3 and first.unchanged == []
    submit(course, "bob", "partly_wrong")  # a new notebook
    (course.submitted / "cat" / "tiny" / "timestamp.txt").write_text("2026-12-02 10:00:00.000000 UTC")  # collected again
    fast_grade.gradebook.recorded.clear()
    again, results = fast_grade(workers=1)
    assert sorted(results) == ["bob"] and sorted(again.skipped) == ["amy", "cat"]
    assert fast_grade.gradebook.recorded == [("cat", "graded"), ("bob", "graded")]  # cat's new time, then bob
    cat = SubmissionResult.load(course.autograded / "cat" / "tiny" / "result.json")
    assert cat.submitted_at.startswith("2026-12-02T10:00:00") and again.standings.keys() == {"amy", "bob", "cat"}
    fast_grade.gradebook.known.pop("amy")  # another gradebook (--db) that lacks amy's grade
    fast_grade.gradebook.recorded.clear()
    refill, _ = fast_grade(workers=1)
    assert refill.results == [] and fast_grade.gradebook.recorded == [("amy", "graded")]
    assert sorted(r.student for r in fast_grade(workers=1, seed=1)[0].results) == ["amy", "bob", "cat"]  # new reference
    assert sorted(r.student for r in fast_grade(workers=1, seed=1, force=True)[0].results) == ["amy", "bob", "cat"]


def test_grade_shares_the_cores_among_the_jobs_it_runs_at_once(fast_grade, monkeypatch):
    from autograder import grade as grade_module
    for student in ("amy", "bob", "cat"):
        submit(fast_grade.course, student, "correct")
    monkeypatch.setattr(grade_module.os, "cpu_count", lambda: 8)
    fast_grade()  # one job per core, but only 3 submissions: 3 at once, 8 // 3 cores each
    assert [j.threads for j in fast_grade.jobs] == [2, 2, 2]
    fast_grade.jobs.clear()
    fast_grade(workers=2, force=True)
    assert [j.threads for j in fast_grade.jobs] == [4, 4, 4]
    fast_grade.jobs.clear()
    fast_grade(workers=16, force=True)
    assert [j.threads for j in fast_grade.jobs] == [2, 2, 2]
    fast_grade.jobs.clear()
    fast_grade(workers=1, force=True)
    assert [j.threads for j in fast_grade.jobs] == [8, 8, 8]
    monkeypatch.setattr(grade_module.os, "cpu_count", lambda: None)  # unknown: one
    fast_grade.jobs.clear()
    fast_grade(force=True)
    assert [j.threads for j in fast_grade.jobs] == [1, 1, 1]


def test_grade_runs_on_the_gpus_it_sees_one_job_per_gpu(fast_grade, monkeypatch):
    from types import SimpleNamespace

    from autograder import grade as grade_module
    for student in ("amy", "bob", "cat"):
        submit(fast_grade.course, student, "correct")
    cuda = SimpleNamespace(is_available=lambda: True, device_count=lambda: 2)
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))  # two GPUs, without importing torch
    monkeypatch.setattr(grade_module.os, "cpu_count", lambda: 8)
    assert grade_module.gpu_count("cpu") == 0 and grade_module.gpu_count("auto") == 2
    fast_grade(device="auto")
    assert {j.parameters["device"] for j in fast_grade.jobs} == {"cuda"}
    assert {j.gpu for j in fast_grade.jobs} == {0, 1} and {j.threads for j in fast_grade.jobs} == {4}
    cuda.device_count = lambda: 1
    fast_grade.jobs.clear()
    fast_grade(device="auto", force=True)  # one GPU is a GPU too
    assert [(j.parameters["device"], j.gpu) for j in fast_grade.jobs] == [("cuda", 0)] * 3
    cuda.is_available = lambda: False
    assert grade_module.gpu_count("auto") == 0
    with pytest.raises(ValueError, match="--device cuda was asked for, but no CUDA GPU is visible here"):
        grade_module.gpu_count("cuda")


def test_find_submissions_takes_the_assignments_notebook_or_the_only_one(course):
    from autograder.grade import find_submissions

    for student, names in [("amy", ["tiny.ipynb", "scratch.ipynb"]), ("bob", ["mine.ipynb"]),
                           ("cat", ["a.ipynb", "b.ipynb"]), ("dan", [])]:
        folder = course.submitted / student / "tiny"
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_text("{}")
    (course.submitted / "eve" / "other").mkdir(parents=True)  # submitted another assignment only
    found = find_submissions(course, "tiny", None)
    assert found == {"amy": course.submitted / "amy" / "tiny" / "tiny.ipynb",
                     "bob": course.submitted / "bob" / "tiny" / "mine.ipynb", "cat": None, "dan": None}
    assert list(find_submissions(course, "tiny", ["bob", "dan"])) == ["bob", "dan"]
    with pytest.raises(ValueError, match="no submissions of 'nothing' under"):
        find_submissions(course, "nothing", None)


def test_job_files_are_read_back_without_following_links(tmp_path):
    (tmp_path / "checks").mkdir()
    (tmp_path / "status.json").write_text('{"status": "ok"}')
    (tmp_path / "runner.log").write_text("x" * 100 + "last line")
    assert read_job_file(tmp_path, "status.json", 1024) == b'{"status": "ok"}'
    assert read_job_file(tmp_path, "output.ipynb", 1024) is None
    assert read_job_file(tmp_path, "runner.log", 9, tail=True) == b"last line"
    with pytest.raises(TamperedFileError, match="larger than"):
        read_job_file(tmp_path, "runner.log", 9)
    os.symlink("/dev/zero", tmp_path / "checks" / "checks.jsonl")
    with pytest.raises(TamperedFileError, match="symbolic link"):
        read_job_file(tmp_path, "checks/checks.jsonl", 1024)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(TamperedFileError, match="not a regular file"):
        read_job_file(tmp_path, "fifo", 1024)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "checks.jsonl").write_text("{}")
    os.symlink(tmp_path / "elsewhere", tmp_path / "linked")
    with pytest.raises(TamperedFileError, match="not a folder"):
        read_job_file(tmp_path, "linked/checks.jsonl", 1024)


def test_rigged_scalars_are_recorded_as_what_they_hold(tmp_path, monkeypatch):
    class Rigged(float):
        def __float__(self):
            return 6.0

        def __eq__(self, other):
            return True

    class Liar:
        __class__ = property(lambda self: float)  # isinstance(Liar(), float) is True

    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    check("rigged", Rigged(0.0))
    check("liar", Liar())
    check("rigged_int", type("RiggedInt", (int,), {"__int__": lambda self: 6})(0))
    records = [json.loads(line) for line in (tmp_path / RECORDS_FILE).read_text().splitlines()]
    assert records[0]["value"] == {"kind": "float", "value": 0.0}
    assert records[1]["value"]["kind"] == "unsupported"
    assert records[2]["value"] == {"kind": "int", "value": 0}


def test_check_records_tensors_and_arrays_as_their_numbers_and_returns_the_value(tmp_path, monkeypatch):
    import torch

    tensor = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    half = torch.tensor([0.5, -1.25], dtype=torch.bfloat16)  # numpy has no bfloat16: saved as float32
    array = np.array([[1, 2]], dtype=np.int16)
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert check("outside", tensor) is tensor  # a student's own run: the visible tests get the value itself
    assert not (tmp_path / RECORDS_FILE).exists()
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert check("tensor", tensor) is tensor and check("half", half) is half and check("array", array) is array
    records = [json.loads(line)["value"] for line in (tmp_path / RECORDS_FILE).read_text().splitlines()]
    assert [(r["kind"], r["dtype"], r["device"], r["shape"]) for r in records] == [
        ("tensor", "float64", "cpu", [2, 3]), ("tensor", "bfloat16", "cpu", [2]), ("ndarray", "int16", "cpu", [1, 2])]
    saved = [np.load(tmp_path / r["file"], allow_pickle=False) for r in records]
    assert saved[0].dtype == np.float64 and saved[0].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert saved[1].dtype == np.float32 and saved[1].tolist() == [0.5, -1.25]
    assert saved[2].dtype == np.int16 and saved[2].tolist() == [[1, 2]]


def test_check_records_plain_values_as_typed_data(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    for value in (None, True, False, 3, -0.5, float("inf"), float("nan"), "ValueError", [1, (2.0, "x")], {"a": 1}):
        check("v", value)
    records = [json.loads(line)["value"] for line in (tmp_path / RECORDS_FILE).read_text().splitlines()]
    assert records == [
        {"kind": "none"}, {"kind": "bool", "value": True}, {"kind": "bool", "value": False},
        {"kind": "int", "value": 3}, {"kind": "float", "value": -0.5},
        {"kind": "float", "value": "inf"}, {"kind": "float", "value": "nan"},  # JSON has no inf or NaN
        {"kind": "str", "value": "ValueError"},
        {"kind": "sequence", "items": [{"kind": "int", "value": 1},
                                       {"kind": "sequence", "items": [{"kind": "float", "value": 2.0},
                                                                      {"kind": "str", "value": "x"}]}]},
        {"kind": "unsupported", "type": "dict"}]
    criteria = [json.loads(line)["criteria"] for line in (tmp_path / RECORDS_FILE).read_text().splitlines()]
    assert criteria[0] == {"rtol": 1e-4, "atol": 1e-6, "at_least": None, "at_most": None, "measure": None,
                           "measure_args": None}  # the tolerances a check without its own is graded with


def test_expect_and_arrays_that_need_pickling_are_recorded_as_such(tmp_path, monkeypatch):
    from autograder.checks import expect
    from autograder.reference import is_expectation

    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    expect("v", 1.5)
    check("objects", np.array([{"a": 1}], dtype=object))  # saving it would need pickle, which the grader never loads
    made, objects = [json.loads(line) for line in (tmp_path / RECORDS_FILE).read_text().splitlines()]
    assert is_expectation(made) and made["value"] == {"kind": "float", "value": 1.5}
    assert not is_expectation(objects) and objects["value"]["kind"] == "unsupported"
    assert "Python objects" in objects["value"]["error"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [RECORDS_FILE]  # no half-written .npy


def test_an_array_that_fails_to_save_leaves_no_file(tmp_path, monkeypatch):
    def disk_full(file, array, allow_pickle):
        Path(file).write_bytes(b"\x93NUMPY")  # the header made it, the data did not
        raise OSError(28, "No space left on device")

    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    monkeypatch.setattr(np, "save", disk_full)
    check("big", np.zeros(3))
    record = json.loads((tmp_path / RECORDS_FILE).read_text())
    assert record["value"] == {"kind": "unsupported", "type": "ndarray", "error": "[Errno 28] No space left on device"}
    assert sorted(path.name for path in tmp_path.iterdir()) == [RECORDS_FILE]


# --------------------------------------------------------------------------- cgroups


def test_cgroup_v2_limits_memory_swap_and_processes(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")  # a unified (v2) hierarchy
    group = Cgroup("job-1", 2**30, 64, root=tmp_path)
    path = tmp_path / "autograder" / "job-1"
    assert group.unified and group.limits_memory and group.dirs == [path]
    assert [(path / f).read_text() for f in ("memory.max", "memory.swap.max", "pids.max")] == [str(2**30), "0", "64"]
    group.add(4242)
    assert (path / "cgroup.procs").read_text() == "4242"
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\n")
    assert not group.oom_killed()  # reached the limit and reclaimed, nobody killed
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    assert group.oom_killed()


def test_cgroup_v1_limits_memory_and_processes(tmp_path):
    for controller in ("memory", "pids"):
        (tmp_path / controller).mkdir()
    group = Cgroup("job-1", 2**30, 64, root=tmp_path)
    assert not group.unified and group.limits_memory
    assert (tmp_path / "memory" / "autograder" / "job-1" / "memory.limit_in_bytes").read_text() == str(2**30)
    assert (tmp_path / "pids" / "autograder" / "job-1" / "pids.max").read_text() == "64"
    control = tmp_path / "memory" / "autograder" / "job-1" / "memory.oom_control"
    control.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert not group.oom_killed()
    control.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert group.oom_killed()


def test_no_cgroup_where_none_can_be_made(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")
    (tmp_path / "autograder").write_text("")  # no group can be made below this
    group = Cgroup("job-1", 2**30, 64, root=tmp_path)
    assert group.dirs == [] and not group.limits_memory and not group.oom_killed()
    group.add(4242)
    group.remove()


def test_cgroup_of_this_host_kills_a_memory_hog():
    """The real kernel, with whichever hierarchy this host has (v1 here, v2 on most GPU servers)."""
    group = Cgroup(f"test-{os.getpid()}", 64 * 2**20, 64)
    try:
        if not group.limits_memory:
            pytest.skip("no memory cgroup can be made here (not root, or a read-only cgroup tree)")
        hog = subprocess.run([sys.executable, "-c", "x = bytearray(512 * 2**20); x[::4096] = b'x' * len(x[::4096])"],
                             preexec_fn=lambda: group.add(os.getpid()), capture_output=True)
        assert hog.returncode == -signal.SIGKILL, hog
        assert group.oom_killed()
    finally:
        group.remove()


def _executed_cell(source: str, gid: str, error: tuple[str, str] | None = None, **nbgrader) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, metadata={"nbgrader": {"grade_id": gid, **nbgrader}})
    if error:
        cell.outputs = [nbformat.v4.new_output("error", ename=error[0], evalue=error[1], traceback=[])]
    return cell


def test_feedback_shows_error_messages_only_from_before_the_first_hidden_test():
    """Once a cell with hidden tests has run, the student's code could have copied them into
    any message: from then on only the error's type is shown, unless the message is a
    test's own assert text. Given cells that raise are named (not just the NameError after)."""
    from autograder.score import answer_errors, cell_errors

    executed = nbformat.v4.new_notebook(cells=[
        _executed_cell("def f(x): ...", "f", ("ValueError", "early detail"), solution=True),
        _executed_cell("assert f(1) == 2, 'f(1) should be 2'\n### BEGIN HIDDEN TESTS\ncheck('f', f(3))\n"
                       "### END HIDDEN TESTS", "test_f", ("AssertionError", "f(1) should be 2"), grade=True, points=1),
        _executed_cell("def g(x): ...", "g", ("RuntimeError", "check('f', f(3))"), solution=True),
        _executed_cell("data = train(g)", "given", ("NotImplementedError", ""), locked=True),
        _executed_cell("check('g', g(1))", "test_g", ("RuntimeError", "secret"), grade=True, points=1),
    ])
    assert answer_errors(executed) == [
        "answer cell 'f' raised ValueError: early detail",
        "answer cell 'g' raised RuntimeError (its message is not shown: it was raised after hidden tests had run, "
        "so your code could have copied them into it; `validate` shows it)",
        "the given cell 'given' raised NotImplementedError (an answer it uses is not written yet)",
    ]
    errors = cell_errors(executed)
    assert errors["test_f"] == "AssertionError: f(1) should be 2"  # the test's own words
    assert errors["test_g"].startswith("RuntimeError (its message is not shown")


def test_plain_answers_are_copies_of_the_base_types():
    """What tests compute with: no subclass's operators, no shared memory, nothing unknown."""
    import torch

    from autograder.checks import plain

    class RiggedTensor(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return torch.zeros(())  # every operation "matches"

    class RiggedArray(np.ndarray):
        def __sub__(self, other):
            return np.zeros(())

    values = torch.ones(3)
    tensor = plain(values.as_subclass(RiggedTensor))
    array = plain(np.ones(3).view(RiggedArray))
    assert type(tensor) is torch.Tensor and float((tensor - torch.zeros(3)).sum()) == 3.0
    assert type(array) is np.ndarray and float((array - np.zeros(3)).sum()) == 3.0
    source = np.ones(3)
    copied = plain(source.view(RiggedArray))
    values += 1  # the caller's tensor and array change later: the plain copies do not
    source += 1
    assert tensor.tolist() == [1.0, 1.0, 1.0] and copied.tolist() == [1.0, 1.0, 1.0]
    assert plain(True) is True and plain(False) is False
    assert plain((tensor, [2.5, None]))[1] == [2.5, None]
    with pytest.raises(TypeError, match="got object"):
        plain(object())


def test_a_cell_stopped_at_the_time_limit_is_listed_and_its_error_says_so():
    """nbclient stops a cell at the time limit with KeyboardInterrupt: only such cells time out."""
    from autograder.score import cell_errors, timed_out_cells

    executed = nbformat.v4.new_notebook(cells=[
        _executed_cell("check('f', f(1))", "test_f", ("KeyboardInterrupt", ""), grade=True, points=1),
        _executed_cell("check('g', g(1))", "test_g", ("ValueError", "bad"), grade=True, points=1),
    ])
    assert timed_out_cells(executed) == ["test_f"]
    assert timed_out_cells(None) == []
    assert cell_errors(executed) == {
        "test_f": "KeyboardInterrupt (the cell ran longer than the time limit per cell and was stopped; "
                  "later cells still ran)",
        "test_g": "ValueError: bad"}


def test_an_errors_name_is_cut_to_100_characters_and_its_message_to_500():
    """However long what a cell raised, its feedback line stays bounded."""
    from autograder.score import cell_errors

    executed = nbformat.v4.new_notebook(cells=[
        _executed_cell("check('f', f(1))", "test_f", ("E" * 150, "m" * 600), grade=True, points=1)])
    assert cell_errors(executed) == {"test_f": "E" * 100 + ": " + "m" * 500}
