"""Compare a student's ``check`` records with the solution's, in the grader's process.

Both sides are plain data read from files (numbers, strings, ``.npy`` arrays), so nothing
the student's code did to objects in its kernel can influence the comparison. Messages
say what is wrong without showing hidden inputs.
"""

from __future__ import annotations

import builtins
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one recorded check."""

    name: str
    passed: bool
    message: str = ""


# Names a record or an error carries are written by the student's code: after hidden tests
# have run they could spell out hidden tests. Feedback repeats them only from these lists.
KINDS = frozenset({"tensor", "ndarray", "sequence", "int", "float", "bool", "str", "none", "unsupported"})
DTYPES = frozenset({"bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float16",
                    "bfloat16", "float32", "float64", "complex64", "complex128"})
KNOWN_TYPES = frozenset({"Tensor", "Parameter", "ndarray", "generator", "function", "module", "type", "map",
                         "zip", "filter", "range", "dict", "set", "frozenset", "bytes", "complex", "object"})
DEVICES = frozenset({"cpu", "cuda", "mps", "xpu", "meta"})
KNOWN_EXCEPTIONS = frozenset(name for name, value in vars(builtins).items()
                             if isinstance(value, type) and issubclass(value, BaseException)) | {
    "OutOfMemoryError", "LinAlgError", "DataUnavailableError"}


def said(name: Any, known: frozenset[str], otherwise: str) -> str:
    """``name`` if it is in ``known``, else ``otherwise`` (see :data:`KINDS`)."""
    return name if isinstance(name, str) and name in known else otherwise


def exception_name(name: str) -> str:
    return said(name, KNOWN_EXCEPTIONS, "an exception of a class defined in the notebook")


def _kind_text(value: dict[str, Any]) -> str:
    return said(value.get("kind"), KINDS, "value of an unknown kind")


def _a(word: str) -> str:
    """``word`` with its indefinite article: "an int", "a tensor"."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _shape_text(shape: Any) -> str:
    ok = isinstance(shape, list) and all(type(d) is int for d in shape)
    return str(tuple(shape)) if ok else "(not a shape)"


def decode_array(value: dict[str, Any]) -> np.ndarray:
    return np.load(io.BytesIO(value["npy"]), allow_pickle=False)


def _number(value: dict[str, Any]) -> float | None:
    kind = value.get("kind")
    if kind in ("int", "float", "bool"):
        try:
            return float(value["value"])
        except (TypeError, ValueError, KeyError):
            return None
    if kind in ("tensor", "ndarray") and value.get("shape") in ([], [1]):
        array = decode_array(value)
        return float(array.reshape(-1)[0]) if array.dtype.kind in "biuf" else None
    return None


def _criteria(reference: dict[str, Any]) -> tuple[float, float, float | None, float | None, str | None]:
    c = reference.get("criteria", {})
    return float(c.get("rtol", 1e-4)), float(c.get("atol", 1e-6)), c.get("at_least"), c.get("at_most"), c.get("measure")


def _plain(value: dict[str, Any]) -> Any:
    """A record as Python data: arrays for tensors, lists for sequences, else the value."""
    kind = value.get("kind")
    if kind in ("tensor", "ndarray"):
        return decode_array(value)
    if kind == "sequence":
        return [_plain(item) for item in value.get("items", [])]
    return value.get("value")


def _measured(measure: str, arguments: Any, got: dict[str, Any], quote: bool) -> float | str:
    """What the grader measures of the recorded parameters, or why it cannot (``quote``:
    the reason may repeat the record's shapes and names, see :func:`compare`)."""
    from autograder.measures import MEASURES, MeasureError

    if measure not in MEASURES:
        return f"the solution asks for an unknown measure {measure!r}"
    if not isinstance(arguments, dict):
        arguments = {}
    if got.get("kind") != "sequence" or not got.get("items"):
        return f"expected a list of parameter tensors, got {_a(_kind_text(got))}"
    try:
        return MEASURES[measure](_plain(got), **arguments)
    except MeasureError as exc:
        return f"the recorded model cannot be evaluated: {exc if quote else 'it is not a model of the kind this check takes'}"
    except Exception as exc:  # noqa: BLE001 - no recorded value may stop the grading of others
        return f"the recorded model could not be evaluated ({type(exc).__name__})"


def _compare_values(ref: dict[str, Any], got: dict[str, Any], rtol: float, atol: float, quote: bool) -> str:
    """Empty string when equal within tolerance, else what differs.

    ``quote``: the message may repeat what the student's code recorded (a shape, a number,
    how far off it is). Without it, a message says only what the reference and the fixed
    lists above hold, so a record cannot carry text out to the feedback.
    """
    kind, got_kind = ref.get("kind"), _kind_text(got)
    if got_kind == "unsupported":
        shown = said(got.get("type"), KNOWN_TYPES, "")
        return f"expected {_a(kind)}, got an object of {f'type {shown}' if shown else 'a class defined in the notebook'}" \
               " that cannot be checked"
    if kind in ("tensor", "ndarray"):
        if got_kind != kind:
            return f"expected {_a(kind)}, got {_a(got_kind)}"
        if got.get("dtype") != ref.get("dtype"):
            return f"expected dtype {ref.get('dtype')}, got {said(got.get('dtype'), DTYPES, 'another dtype')}"
        if got.get("shape") != ref.get("shape"):
            return f"expected shape {tuple(ref.get('shape', []))}, got {_shape_text(got.get('shape')) if quote else 'another shape'}"
        if kind == "tensor" and got.get("device") != ref.get("device"):
            return f"expected a tensor on {ref.get('device')}, got one on {said(got.get('device'), DEVICES, 'another device')}"
        expected, actual = decode_array(ref), decode_array(got)
        if actual.shape != expected.shape:
            return "the recorded array does not match its declared shape"
        if expected.dtype.kind not in "fc":
            return "" if np.array_equal(actual, expected) else "values differ from the expected ones"
        if not np.array_equal(np.isnan(actual), np.isnan(expected)):
            return "NaN where a number was expected (or a number where NaN was expected)"
        if not np.array_equal(np.isinf(actual), np.isinf(expected)) or not np.array_equal(
            actual[np.isinf(actual)], expected[np.isinf(expected)]
        ):
            return "infinite values where finite ones were expected (or the reverse)"
        finite = np.isfinite(expected)
        a, e = actual[finite].astype(np.float64), expected[finite].astype(np.float64)
        if a.size and not np.allclose(a, e, rtol=rtol, atol=atol):
            worst = f"largest difference {float(np.max(np.abs(a - e))):.3g}; " if quote else ""
            return f"values differ from the expected ones ({worst}tolerance rtol={rtol:g}, atol={atol:g})"
        return ""
    if kind == "sequence":
        if got_kind != "sequence":
            return f"expected a sequence, got {_a(got_kind)}"
        items, got_items = ref.get("items", []), got.get("items", [])
        if len(items) != len(got_items):
            return f"expected {len(items)} items, got {len(got_items) if quote else 'another number'}"
        for i, (r, g) in enumerate(zip(items, got_items, strict=True)):
            problem = _compare_values(r, g, rtol, atol, quote)
            if problem and not quote:  # which item differs is the record's choice too
                return problem if problem.startswith("an item: ") else f"an item: {problem}"
            if problem:  # nested sequences: "item [0][1]: ...", as the value would be indexed
                return f"item [{i}]{problem[5:]}" if problem.startswith("item [") else f"item [{i}]: {problem}"
        return ""
    if kind in ("int", "float"):
        expected, actual = _number(ref), _number(got)
        if got_kind not in ("int", "float") or actual is None:
            return f"expected a number, got {_a(got_kind)}"
        if expected is None:
            return "the expected value is not a number"
        if math.isnan(expected) or math.isnan(actual):
            return "" if math.isnan(expected) and math.isnan(actual) else "NaN mismatch"
        exact = kind == "int" and got_kind == "int"
        if expected == actual if exact else math.isclose(actual, expected, rel_tol=rtol, abs_tol=atol):
            return ""
        return f"got {actual:.6g}, which differs from the expected value" if quote else "the value differs from the expected one"
    if kind in ("bool", "str", "none"):
        if got_kind == kind and got.get("value") == ref.get("value"):
            return ""
        if kind == "bool" and got_kind == "bool":  # the other of two values: the verdict says as much
            return f"expected {ref.get('value') is True}, got {ref.get('value') is not True}"
        return f"expected {_a(kind)}, got {_a(got_kind)}" if got_kind != kind else "the value differs from the expected one"
    return f"cannot compare values of kind {kind}"


def _float_text(x: float) -> str:
    """4 significant digits, unpadded: positional up to 4 digits before the point (where
    rounding changes no digit it shows as 0), else scientific."""
    magnitude = abs(float(x))  # a float16's own comparison with 1e4 would overflow
    if magnitude == 0 or not np.isfinite(magnitude) or 1e-4 <= magnitude < 1e4:
        return np.format_float_positional(x, precision=4, unique=True, fractional=False, trim=".")
    return f"{float(x):.4g}"


def _shown(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return np.array2string(value, separator=", ", threshold=12, edgeitems=2,
                               formatter={"float_kind": _float_text}).replace("\n", "")
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _expected_and_got(ref: dict[str, Any], got: dict[str, Any], rtol: float, atol: float, quote: bool) -> str:
    """The expected and (with ``quote``) the recorded value where they differ, for checks
    the student can see."""
    kind = ref.get("kind")
    if kind == "sequence" and not quote:  # the item shown would say which one the record got wrong
        return ""
    if kind == "sequence" and got.get("kind") == "sequence" and len(ref.get("items", [])) == len(got.get("items", [])):
        for r, g in zip(ref["items"], got["items"], strict=True):
            if _compare_values(r, g, rtol, atol, quote):
                return _expected_and_got(r, g, rtol, atol, quote)
        return ""
    if kind in ("tensor", "ndarray") and got.get("kind") == kind and got.get("shape") == ref.get("shape"):
        expected, actual = decode_array(ref), decode_array(got)
        if not quote:  # where it differs and how many entries do are the record's too
            return f"expected {_shown(expected)}" if expected.size <= 12 else ""
        if expected.size <= 12:
            return f"expected {_shown(expected)}, got {_shown(actual)}"
        if expected.dtype.kind in "fc":
            with np.errstate(invalid="ignore"):
                wrong = ~np.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
        else:  # integers and booleans: exact, as the verdict
            wrong = actual != expected
        if not wrong.any():
            return ""
        where = tuple(int(i) for i in np.argwhere(wrong)[0])
        return (f"first at index {where}: expected {_shown(expected[where].item())}, "
                f"got {_shown(actual[where].item())} ({int(wrong.sum())} of {wrong.size} entries differ)")
    if kind in ("int", "float") and got.get("kind") in ("int", "float"):
        number = _number(ref)  # the message already says what was got
        return "" if number is None else f"expected {number:.6g}"
    if kind in ("str", "none"):
        return f"expected {_shown(_plain(ref))}" + (f", got {_shown(_plain(got))}" if quote else "")
    return ""  # bool: the message shows both


def _raised(ref: dict[str, Any], got: dict[str, Any], visible: bool) -> str:
    """What a test's ``result_of`` caught, when it recorded an error instead of a value.

    Only the exception's type unless ``visible``: the message could quote hidden inputs.
    """
    text = got.get("value")
    if got.get("kind") != "str" or ref.get("kind") == "str" or not str(text).startswith("error: "):
        return ""
    error = str(text).removeprefix("error: ")
    return f"the computation raised {error[:300] if visible else exception_name(error.split(':')[0])}"


def compare(reference: dict[str, Any], student: list[dict[str, Any]], visible: bool = False,
            messages: bool = True) -> CheckResult:
    """Judge the student's records named like ``reference`` (all records with that name).

    ``visible``: the check is in the part of the test the student sees, so a mismatch also
    shows the expected value (never for hidden checks: that would reveal hidden answers).
    ``messages``: what the student's code recorded may be quoted (a value, a shape, an
    error's message): not once that code could have read hidden tests, since it could have
    copied them into the record. Only a measure's result, which the grader computes, is
    still shown then.
    """
    try:
        return _judge(reference, student, visible, messages)
    except Exception as exc:  # noqa: BLE001 - records come from untrusted code: no value may stop the grading
        return CheckResult(reference["name"], False, f"the recorded value could not be read ({type(exc).__name__})")


def _judge(reference: dict[str, Any], student: list[dict[str, Any]], visible: bool, messages: bool) -> CheckResult:
    name = reference["name"]
    if not student:
        return CheckResult(name, False, "not recorded: the test stopped before this check (see the error above)")
    if len(student) > 1:
        return CheckResult(name, False, "recorded more than once: a test's checks run exactly once")
    rtol, atol, at_least, at_most, measure = _criteria(reference)
    got = student[0]["value"]
    if at_least is not None or at_most is not None:
        if measure is not None:
            measured = _measured(str(measure), reference.get("criteria", {}).get("measure_args"), got, messages)
            if isinstance(measured, str):
                return CheckResult(name, False, measured)
            value: float | None = measured
        else:
            value = _number(got)
        if value is None or math.isnan(value):
            return CheckResult(name, False, f"expected a number, got {_a(_kind_text(got))}")
        shown = f"{value:.4g}" if messages or measure is not None else ""  # a measure is the grader's number
        got_text = f"got {shown}, " if shown else ""
        if at_least is not None and value < float(at_least):
            return CheckResult(name, False, f"{got_text}needs at least {float(at_least):g}")
        if at_most is not None and value > float(at_most):
            return CheckResult(name, False, f"{got_text}needs at most {float(at_most):g}")
        return CheckResult(name, True, shown)
    raised = _raised(reference["value"], got, visible and messages)
    if raised:
        return CheckResult(name, False, raised)
    problem = _compare_values(reference["value"], got, rtol, atol, messages)
    if problem and visible:
        shown = _expected_and_got(reference["value"], got, rtol, atol, messages)
        problem = f"{problem}; {shown}" if shown else problem
    return CheckResult(name, not problem, problem)
