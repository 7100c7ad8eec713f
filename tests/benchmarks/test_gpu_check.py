"""``.ci/gpu-check``, the one-run GPU check for a lent GPU machine, stays runnable.

It cannot run here (no GPU); what can drift without one is checked: the wheels it installs
are packages of this course's environment (whose versions they take), and the tests it
names exist.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "gpu-check"


def test_every_wheel_is_a_package_of_the_course_environment():
    """make gpu-wheels pins each to the version installed here, so each must be installed."""
    lines = (ROOT / ".ci" / "gpu-wheels.txt").read_text().splitlines()
    names = [line for line in lines if line and not line.startswith("#")]
    assert {"papermill", "nbgrader", "ipykernel", "num2words", "d2l"} <= set(names)
    for name in names:
        importlib.metadata.version(name)  # raises PackageNotFoundError if it is not


def test_script_parses_and_names_tests_that_exist():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    named = re.findall(r"(tests/[\w/]+\.py)(?:::(\w+))?", SCRIPT.read_text())
    assert len(named) >= 6
    for path, test in named:
        assert (ROOT / path).is_file(), path
        if test:
            assert f"def {test}(" in (ROOT / path).read_text(), f"{path}::{test}"
