"""What test cells record for grading: ``check(name, value)``.

Test cells run in the student's kernel, where the student's code could have replaced
``torch.allclose``, ``assert`` helpers or ``__eq__``. So a test cell does not decide by
itself whether it passed: it *records* the values it computed with ``check``, as plain
data (numbers, strings, arrays) in files, and the grader compares them, in its own
process, with the values the instructor's solution recorded for the same test code. A
rigged object cannot survive the trip into a ``.npy`` file, and patching anything inside
the kernel can only change what the student's own run records.

Outside grading (``AUTOGRADER_CHECKS`` unset), ``check`` only returns its value, so
students running their notebook see the visible tests' own ``assert`` messages.

A number the test computes in the student's kernel *about* the answer (its error against a
reference, whether it is non-negative) is as much under the student's control as the
answer: code that replaces ``check`` can record 0 or True. So tests record outputs, and a
reference they compute independently (by enumeration, with ``torch.distributions``) goes
through :func:`expect` inside a ``### BEGIN REFERENCE`` ... ``### END REFERENCE`` region of
the hidden tests: only the solution's run has that code, so a student's kernel never holds
the reference's values to copy. (A helper the visible tests define, such as an enumeration,
stays callable: a forgery through it earns what an answer calling it earns.)
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

ENV_VAR = "AUTOGRADER_CHECKS"
RECORDS_FILE = "checks.jsonl"
# What one record may cost the grader to parse (parsed JSON takes ~24 times its text): the
# runner refuses a line over it, so check() records a larger value as too large instead.
MAX_RECORD_NODES = 100_000
_counter = {"n": 0}


def json_nodes(line: bytes) -> int:
    """An upper bound on the JSON objects and lists in ``line`` (what parsing it costs)."""
    return line.count(b"{") + line.count(b"[")


def _encode(value: Any, directory: Path) -> dict[str, Any]:
    """Plain-data description of ``value``; arrays go to their own ``.npy`` file.

    Types are read with ``type()`` (``__class__`` can lie to ``isinstance``) and values
    through the base types' own methods, so a ``float`` subclass whose ``__float__``
    returns the expected answer is recorded as the number it really holds.
    """
    import numpy as np

    try:
        import torch
    except ImportError:  # pragma: no cover - the course always has torch
        torch = None
    kind = type(value)
    if torch is not None and issubclass(kind, torch.Tensor):
        # Disable __torch_function__ overrides of tensor subclasses while reading the data.
        with torch._C.DisableTorchFunctionSubclass():
            data = torch.Tensor.detach(value).to("cpu")
            dtype, device = str(value.dtype).removeprefix("torch."), value.device.type
            if data.dtype == torch.bfloat16:
                data = data.float()
            array = np.array(data.numpy(), copy=True)
        return _array_record(array, directory, dtype=dtype, device=device, kind="tensor")
    if issubclass(kind, np.ndarray):
        array = np.array(value, copy=True, subok=False)
        return _array_record(array, directory, dtype=str(array.dtype), device="cpu", kind="ndarray")
    if value is None:
        return {"kind": "none"}
    if kind is bool:  # bool cannot be subclassed
        return {"kind": "bool", "value": value is True}
    if issubclass(kind, int):
        return {"kind": "int", "value": int.__int__(value)}
    if issubclass(kind, float):
        number = float.__float__(value)
        return {"kind": "float", "value": number if math.isfinite(number) else repr(number)}
    if issubclass(kind, str):
        return {"kind": "str", "value": str.__str__(value)}
    if issubclass(kind, (list, tuple)):
        items = list.__iter__(value) if issubclass(kind, list) else tuple.__iter__(value)
        return {"kind": "sequence", "items": [_encode(item, directory) for item in items]}
    return {"kind": "unsupported", "type": kind.__name__}


def _array_record(array, directory: Path, *, dtype: str, device: str, kind: str) -> dict[str, Any]:
    import numpy as np

    if array.dtype.hasobject:  # saving it would need pickle, which the grader never loads
        raise TypeError(f"an array of Python objects ({array.dtype}) cannot be recorded")
    _counter["n"] += 1
    filename = f"value-{os.getpid()}-{_counter['n']}.npy"
    try:
        np.save(directory / filename, array, allow_pickle=False)
    except BaseException:  # a full disk or an interrupt: no half-written file stays behind
        (directory / filename).unlink(missing_ok=True)
        raise
    return {"kind": kind, "dtype": dtype, "device": device, "shape": list(array.shape), "file": filename}


def plain(value: Any) -> Any:
    """``value`` with its tensors as plain ``torch.Tensor`` objects holding the same numbers
    (also inside lists and tuples), and number or string subclasses as the base type.

    Tests that compute with an answer (an error against a reference, a property that must
    hold) do so on ``plain(answer)``: a tensor subclass's ``__torch_function__`` or rigged
    operators then take no part in the computation. The methods used are the base classes'
    own, so a subclass cannot override them either, and tensors and arrays are copies, which
    code left running in the background cannot change. Anything else is a ``TypeError``.
    """
    import numpy as np
    import torch

    kind = type(value)
    if issubclass(kind, torch.Tensor):
        with torch._C.DisableTorchFunctionSubclass():
            return torch.Tensor.clone(torch.Tensor.as_subclass(value, torch.Tensor))
    if issubclass(kind, np.ndarray):
        return np.array(np.ndarray.view(value, np.ndarray), copy=True, subok=False)
    if kind is bool or value is None:
        return value
    for base in (int, float, str):
        if issubclass(kind, base):
            return base(getattr(base, f"__{base.__name__}__")(value))
    if issubclass(kind, (list, tuple)):
        items = list.__iter__(value) if issubclass(kind, list) else tuple.__iter__(value)
        return (list if issubclass(kind, list) else tuple)(plain(item) for item in items)
    raise TypeError(f"expected tensors, arrays, numbers or lists of them, got {kind.__name__}")


def check(
    name: str,
    value: Any,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    at_least: float | None = None,
    at_most: float | None = None,
    measure: str | None = None,
    measure_args: dict[str, Any] | None = None,
) -> Any:
    """Record ``value`` under ``name`` for the grader and return it unchanged.

    The grader compares the student's value with the solution's value for the same
    ``name``: tensors and arrays by dtype, shape, device type and ``allclose(rtol, atol)``;
    numbers within the same tolerances; ``at_least``/``at_most`` turn the comparison into a
    threshold on a number (training checks). With ``measure`` (a name in
    :data:`autograder.measures.MEASURES`) the value is a trained model's parameters and the
    threshold applies to what the grader measures of them, in its own process, called with
    ``measure_args`` (plain JSON values).
    Tolerances and measures are read from the solution's run, never from the student's.
    """
    _record(name, value, {"rtol": rtol, "atol": atol, "at_least": at_least, "at_most": at_most, "measure": measure,
                          "measure_args": measure_args})
    return value


def expect(name: str, value: Any) -> None:
    """Record the reference that the check ``name`` of the same test cell is graded against,
    in place of the solution's own value; the grader first makes sure the solution's value
    agrees with it within the check's tolerances.

    Call it only in a ``### BEGIN REFERENCE`` region of the hidden tests, which runs in the
    solution's run and is removed from the notebook a student's submission is graded in.
    A record of this kind from a student's run is ignored.
    """
    _record(name, value, {"expect": True})


def _record(name: str, value: Any, criteria: dict[str, Any]) -> None:
    directory = os.environ.get(ENV_VAR)
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    try:
        encoded = _encode(value, path)
    except Exception as exc:  # a value that cannot be read is recorded as such, not raised
        encoded = {"kind": "unsupported", "type": type(value).__name__, "error": str(exc)[:200]}
    try:
        line = json.dumps({"name": str(name), "value": encoded, "criteria": criteria})
    except (RecursionError, ValueError):
        line = None
    if line is None or json_nodes(line.encode()) > MAX_RECORD_NODES:
        too_large = {"kind": "unsupported", "type": type(value).__name__,
                     "error": f"too large to record (over {MAX_RECORD_NODES:,} JSON objects and lists)"}
        line = json.dumps({"name": str(name), "value": too_large, "criteria": criteria})
    fd = os.open(path / RECORDS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, (line + "\n").encode())  # one call: a timeout's interrupt cannot leave half a line
    finally:
        os.close(fd)
