"""Every assignment in solutions/: its solution earns full marks when graded like a
submission, its unanswered student version earns zero without breaking the grader, and
the student version carries no solution code and no hidden test."""

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from autograder.cells import grade_id, is_answer
from autograder.config import Course, Limits
from autograder.grade import GradeOptions, grade
from autograder.release import release
from autograder.source import list_assignments, load_assignment

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENTS = list_assignments(Course(ROOT))
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


def course_with(tmp_path: Path, name: str) -> Course:
    root = tmp_path / "course"
    shutil.copytree(ROOT / "solutions" / name, root / "solutions" / name)
    return Course(root, limits=Limits(cell_timeout=300, notebook_timeout=600))


def grade_edited_solutions(tmp_path: Path, name: str, students: dict[str, dict[str, str]]) -> dict:
    """Results, by student, of grading the solution of ``name`` with some answer cells'
    sources replaced (``{student: {grade_id: source}}``), in one run."""
    course = course_with(tmp_path, name)
    for student, answers in students.items():
        notebook = nbformat.read(course.solutions / name / f"{name}.ipynb", as_version=4)
        cells = {grade_id(c): c for c in notebook.cells}
        for gid, source in answers.items():
            cells[gid].source = source
        target = course.submitted / student / name / f"{name}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(notebook, target)
    report = grade(course, name, GradeOptions(workers=min(2, len(students)), progress=False, device="cpu"))
    return {result.student: result for result in report.results}


def grade_edited_solution(tmp_path: Path, name: str, answers: dict[str, str]):
    """The result of grading the solution of ``name`` with some answer cells' sources replaced."""
    return grade_edited_solutions(tmp_path, name, {"student": answers})["student"]


def failed_checks(result) -> list[tuple[str, str]]:
    return [(c.grade_id, k.name) for c in result.cells for k in c.checks if not k.passed]


def test_there_are_assignments():
    assert "softmax" in ASSIGNMENTS


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_student_version_has_no_solutions_or_hidden_tests(name, tmp_path):
    course = course_with(tmp_path, name)
    source = load_assignment(course, name).notebook
    released = nbformat.read(release(course, name), as_version=4)
    text = "\n".join(c.source for c in released.cells)
    for cell in source.cells:
        for block in SOLUTION.findall(cell.source) + HIDDEN.findall(cell.source):
            lines = [ln.strip() for ln in block.splitlines() if len(ln.strip()) > 12]
            leaked = [ln for ln in lines if ln in text and ln not in SOLUTION.sub("", cell.source)]
            assert not leaked, f"{name}: solution/hidden lines in the student version: {leaked[:3]}"
    answers = [c for c in released.cells if is_answer(c) and c.cell_type == "code"]
    assert answers and all("raise NotImplementedError" in c.source for c in answers)
    assert {grade_id(c) for c in released.cells if grade_id(c)} == {grade_id(c) for c in source.cells if grade_id(c)}
    assert any("parameters" in c.metadata.get("tags", []) for c in released.cells)


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_full_marks_and_blank_release_zero(name, tmp_path):
    course = course_with(tmp_path, name)
    for student, path in [("solution", course.solutions / name / f"{name}.ipynb"), ("blank", release(course, name))]:
        target = course.submitted / student / name / f"{name}.ipynb"
        target.parent.mkdir(parents=True)
        shutil.copyfile(path, target)
    report = grade(course, name, GradeOptions(workers=2, progress=False, device="cpu"))
    results = {r.student: r for r in report.results}
    auto_max = sum(c.points for c in results["solution"].cells if c.kind == "auto")
    failing = [(c.grade_id, [k.message for k in c.checks if not k.passed]) for c in results["solution"].cells if c.kind == "auto" and c.score != c.points]
    assert results["solution"].score == auto_max, failing
    assert results["solution"].status == "graded", results["solution"].problems
    assert results["blank"].score == 0.0 and results["blank"].status == "graded"
    assert any(c.kind == "manual" for c in results["solution"].cells), "written answers are graded by hand"


@pytest.mark.gpu
@pytest.mark.slow
def test_softmax_solution_graded_on_cuda_earns_full_marks(tmp_path):
    course = course_with(tmp_path, "softmax")
    target = course.submitted / "solution" / "softmax" / "softmax.ipynb"
    target.parent.mkdir(parents=True)
    shutil.copyfile(course.solutions / "softmax" / "softmax.ipynb", target)
    report = grade(course, "softmax", GradeOptions(device="cuda", progress=False))
    (result,) = report.results
    assert result.status == "graded", result.problems
    assert result.score == sum(c.points for c in result.cells if c.kind == "auto")
    executed = nbformat.read(course.autograded / "solution" / "softmax" / "softmax.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "device cuda" in printed, "the notebook must have run on the GPU"


LYING_TRAIN_EPOCH = '''
_tested_train_epoch = train_epoch


def train_epoch(net, train_iter, loss, updater):
    if isinstance(train_iter, list):  # the tests' tiny problems: train for real
        return _tested_train_epoch(net, train_iter, loss, updater)
    return 0.5, 0.99  # the real training: skipped


def evaluate_accuracy(net, data_iter):  # and the test accuracy claimed
    return 0.99
'''


@pytest.mark.slow
def test_softmax_training_quality_is_measured_by_the_grader(tmp_path):
    """A submission that passes every function test, skips the real training and replaces
    evaluate_accuracy to claim 0.99 loses the training check: the grader measures the
    recorded parameters itself (autograder/measures.py)."""
    course = course_with(tmp_path, "softmax")
    source = course.solutions / "softmax" / "softmax.ipynb"
    liar = nbformat.read(source, as_version=4)
    (cell,) = [c for c in liar.cells if grade_id(c) == "train_epoch"]
    cell.source += "\n" + LYING_TRAIN_EPOCH
    for student, nb in [("honest", nbformat.read(source, as_version=4)), ("liar", liar)]:
        target = course.submitted / student / "softmax" / "softmax.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
    report = grade(course, "softmax", GradeOptions(workers=2, progress=False, device="cpu"))
    results = {r.student: r for r in report.results}
    auto_max = sum(c.points for c in results["honest"].cells if c.kind == "auto")
    assert results["honest"].score == auto_max
    training = {c.grade_id: c for c in results["liar"].cells}["test_training"]
    (model,) = [k for k in training.checks if k.name == "train/model"]
    assert not model.passed and "needs at least" in model.message, model
    assert results["liar"].score == auto_max - training.points / len(training.checks)


@pytest.mark.slow
def test_inference_functions_imported_from_lib_lose_the_module_check(tmp_path):
    """The rules forbid importing lib's versions of the graded functions; a submission that
    does gets every value right and loses exactly the hidden check of where they come from."""
    homes = {"rbm_hidden_posterior": "lib.inference", "rbm_log_partition_bruteforce": "lib.inference",
             "kl_divergence": "lib.em", "elbo": "lib.em", "em_step": "lib.em"}
    result = grade_edited_solution(tmp_path, "inference", {gid: f"from {home} import {gid}" for gid, home in homes.items()})
    assert failed_checks(result) == [("test_em_monotone", "em/functions_defined_in_notebook")]
    cell = {c.grade_id: c for c in result.cells}["test_em_monotone"]
    auto_max = sum(c.points for c in result.cells if c.kind == "auto")
    assert result.score == pytest.approx(auto_max - cell.points / len(cell.checks), abs=1e-4)  # scores: 4 decimals


@pytest.mark.slow
def test_a_failing_visible_assert_costs_only_its_own_checks(tmp_path):
    """In inference's tests the visible asserts run after every check is recorded: a KL that
    returns NaN instead of inf where p_k = 0 < q_k loses that one check, and its values
    elsewhere still earn theirs (the assert used to stop the cell before any check)."""
    nan_for_inf = (
        "def kl_divergence(q, p):\n"
        "    terms = torch.where(q > 0, q * (torch.log(q) - torch.log(p)), torch.zeros_like(q))\n"
        "    out = terms.sum(-1)\n"
        "    return torch.where(torch.isinf(out), torch.full_like(out, float('nan')), out)\n")
    result = grade_edited_solution(tmp_path, "inference", {"kl_divergence": nan_for_inf})
    kl = {c.grade_id: c for c in result.cells}["test_kl_divergence"]
    assert "KL must be inf" in kl.error
    assert [k.name for k in kl.checks if not k.passed] == ["kl/p_zero_where_q_positive"]
    assert kl.score == pytest.approx(kl.points * (len(kl.checks) - 1) / len(kl.checks), abs=1e-4)


@pytest.mark.slow
def test_softmax_calling_torch_softmax_loses_exactly_that_check(tmp_path):
    """The rules forbid torch's softmax inside the graded softmax: right values, one check lost,
    however it is called (a name bound before the test ran escaped the first version)."""
    shortcuts = {
        "plain": "def softmax(X):\n    return torch.softmax(X, dim=1)",
        "alias": "_torch_softmax = torch.softmax\n\ndef softmax(X):\n    return _torch_softmax(X, dim=1)",
        "module": "_softmax = torch.nn.Softmax(dim=1)\n\ndef softmax(X):\n    return _softmax(X)",
    }
    results = grade_edited_solutions(tmp_path, "softmax", {name: {"softmax": code} for name, code in shortcuts.items()})
    for name in shortcuts:
        assert failed_checks(results[name]) == [("test_softmax", "softmax/calls_no_torch_softmax")], name


RIGGED_TENSOR = '''
class Rigged(torch.Tensor):
    """Zeros that claim to match anything: differences vanish, comparisons hold."""
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("__sub__", "__rsub__", "sub"):
            return torch.zeros(())
        if name in ("__ge__", "__le__", "ge", "le"):
            return torch.ones((), dtype=torch.bool)
        return super().__torch_function__(func, types, args, kwargs or {})

def kl_divergence(q, p):
    return torch.zeros(q.shape[:-1], dtype=q.dtype, device=q.device)SUBCLASS
'''


# Replaces the tests' check(): errors recorded as 0, properties as True, and a hidden output
# as the reference the test computed, when one is in the namespace.
FORGED_CHECK = '''

_record = check

def check(name, value, **criteria):
    if name.endswith("_error") or "error_" in name:
        value = 0.0
    elif type(value) is bool:
        value = True
    elif name.startswith("kl/hidden") and "reference" in globals():
        value = globals()["reference"].cpu()
    return _record(name, value, **criteria)
'''


@pytest.mark.slow
def test_rigged_tensors_and_a_do_nothing_em_step_earn_only_what_their_values_earn(tmp_path):
    """A KL of zeros whose subclass makes every difference vanish and every comparison hold
    used to pass the hidden checks computed from it (the error against the reference, the
    sign); the tests compute on plain(answer), so it fails exactly what plain zeros fail."""
    results = grade_edited_solutions(tmp_path, "inference", {
        "rigged": {"kl_divergence": RIGGED_TENSOR.replace("SUBCLASS", ".as_subclass(Rigged)")},
        "zeros": {"kl_divergence": RIGGED_TENSOR.replace("SUBCLASS", "")},
        "forger": {"kl_divergence": RIGGED_TENSOR.replace("SUBCLASS", "") + FORGED_CHECK},
        "em_noop": {"em_step": "def em_step(X, weights, means, variances, min_variance=1e-6):\n"
                               "    return weights, means, variances"},
    })
    assert ("test_kl_divergence", "kl/hidden") in failed_checks(results["zeros"])
    assert failed_checks(results["rigged"]) == failed_checks(results["zeros"])
    assert results["rigged"].score == results["zeros"].score
    # Errors and properties used to be computed in the kernel, where a replaced check() could
    # record 0 and True, and the reference sat in the namespace to be copied. The hidden checks
    # now record outputs and are graded against references only the solution's run computes:
    # the forger earns what its zeros earn, and is flagged for review.
    assert failed_checks(results["forger"]) == failed_checks(results["zeros"])
    assert results["forger"].score == results["zeros"].score
    assert results["forger"].status == "problem" and "binds check" in results["forger"].problems[0]
    # An EM step that changes nothing never lowers the likelihood, nor raises it: no EM check holds.
    monotone = {c.grade_id: c for c in results["em_noop"].cells}["test_em_monotone"]
    assert [k.name for k in monotone.checks if k.passed] == ["em/functions_defined_in_notebook"]


MUTATES_ITS_INPUT = '''

_solution_rnn_forward = rnn_forward

def rnn_forward(X, *args, **kwargs):
    result = _solution_rnn_forward(X, *args, **kwargs)
    X.mul_(0)  # right answer, destroyed input
    return result
'''


@pytest.mark.slow
def test_an_rnn_forward_that_destroys_its_input_loses_that_check_even_when_it_forges_true(tmp_path):
    """The check records the input itself (as the solution leaves it), not whether it is
    unchanged: True is a value any replaced check() can record, the input's numbers are not."""
    solution = nbformat.read(ROOT / "solutions" / "rnn" / "rnn.ipynb", as_version=4)
    answer = next(c.source for c in solution.cells if grade_id(c) == "rnn_forward") + MUTATES_ITS_INPUT
    results = grade_edited_solutions(tmp_path, "rnn", {
        "mutates": {"rnn_forward": answer},
        "forges": {"rnn_forward": answer + FORGED_CHECK},
    })
    for student in ("mutates", "forges"):
        assert ("test_rnn_forward_torch", "rnn_forward/input_unchanged") in failed_checks(results[student]), student
    assert results["forges"].score <= results["mutates"].score
    assert results["forges"].status == "problem" and "binds check" in results["forges"].problems[0]
