"""The gradebook on PostgreSQL (``--db postgresql://...``): same scores as on SQLite.

Starts a throwaway server when PostgreSQL's binaries and psycopg2 are installed (Debian:
``apt-get install postgresql``; ``pip install psycopg2-binary``); skipped otherwise.
"""

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from autograder.config import Course
from autograder.grade import GradeOptions, grade
from autograder.gradebook import GradebookWriter
from tests.autograder.conftest import make_course, submit

pytestmark = pytest.mark.slow
BINARIES = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def as_postgres(*command: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, capture_output=True)


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("psycopg2")
    if not BINARIES or (os.geteuid() == 0 and not shutil.which("runuser")):
        pytest.skip("PostgreSQL server binaries are not installed")
    bin_dir = Path(BINARIES[-1])
    base = Path(tempfile.mkdtemp(prefix="autograder-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    data, port = base / "data", "55432"
    as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "grader", "--auth=trust")
    as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w",
                "-o", f"-p {port} -k {base} -c listen_addresses=''", "start")
    try:
        as_postgres(str(bin_dir / "createdb"), "-h", str(base), "-p", port, "-U", "grader", "gradebook")
        yield f"postgresql+psycopg2://grader@/gradebook?host={base}&port={port}"
    finally:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_grades_recorded_in_postgresql_match_sqlite(tmp_path, postgres_url):
    fixtures = {"a": "correct", "b": "partly_wrong", "c": "tampered"}
    sqlite, postgres = make_course(tmp_path / "sqlite"), make_course(tmp_path / "postgres")
    postgres = Course(postgres.root, db_url=postgres_url, limits=postgres.limits)
    for course in (sqlite, postgres):
        for student, fixture in fixtures.items():
            submit(course, student, fixture)
        grade(course, "tiny", GradeOptions(workers=2, progress=False, device="cpu"))
    with GradebookWriter(sqlite) as a, GradebookWriter(postgres) as b:
        assert a.scores("tiny") == b.scores("tiny") == {"a": 5.0, "b": 3.5, "c": 3.0}
    assert not (postgres.root / "gradebook.db").exists()
