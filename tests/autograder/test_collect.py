"""``collect``: LMS downloads (Canvas, Moodle), nbgrader folders, resubmissions, times."""

import os
import shutil
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from autograder import cli
from autograder.collect import collect, collected_lms_id, submission_time
from autograder.source import SourceError
from tests.autograder.conftest import SUBMISSIONS, make_course, submit

CORRECT = (SUBMISSIONS / "correct.ipynb").read_bytes()
ROOT = Path(__file__).resolve().parents[2]


def version(n: int) -> bytes:
    """A notebook that differs from the others only in its bytes (trailing blank lines)."""
    return CORRECT + b"\n" * n


def make_zip(path: Path, entries: dict[str, tuple[bytes, tuple[int, ...]]]) -> Path:
    """A zip whose entries carry the given dates, as an LMS writes them."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, (data, date) in entries.items():
            archive.writestr(zipfile.ZipInfo(name, date), data)
    return path


def timestamp(course, student: str, assignment: str = "tiny") -> str:
    return (course.submitted / student / assignment / "timestamp.txt").read_text()


def notebook(course, student: str, assignment: str = "tiny") -> bytes:
    return (course.submitted / student / assignment / f"{assignment}.ipynb").read_bytes()


@pytest.fixture
def utc_plus_one(monkeypatch):
    """The grader's clock one hour ahead of UTC: zip dates are local time."""
    monkeypatch.setenv("TZ", "CET-1")  # POSIX: UTC+1, no daylight saving, no tz database needed
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def add_assignment(course, name: str) -> None:
    folder = course.solutions / name
    folder.mkdir()
    shutil.copyfile(course.solutions / "tiny" / "tiny.ipynb", folder / f"{name}.ipynb")


def test_collect_accepts_the_three_layouts(course, tmp_path):
    nbgrader_layout = tmp_path / "in1" / "ann" / "tiny"
    nbgrader_layout.mkdir(parents=True)
    (nbgrader_layout / "mine.ipynb").write_bytes(CORRECT)
    flat = tmp_path / "in2"
    flat.mkdir()
    (flat / "ben_tiny.ipynb").write_bytes(CORRECT)
    (flat / "mystery.ipynb").write_bytes(CORRECT)
    lms = tmp_path / "lms.zip"
    with zipfile.ZipFile(lms, "w") as z:
        z.writestr("cleo_12345_67890_tiny-1.ipynb", CORRECT)
        z.writestr("../escape_tiny.ipynb", CORRECT)
    reports = [collect(course, p) for p in (tmp_path / "in1", flat, lms)]
    assert [r.imported for r in reports] == [
        [("ann", "tiny", Path("ann/tiny/mine.ipynb"))],
        [("ben", "tiny", Path("ben_tiny.ipynb"))],
        [("cleo", "tiny", Path("cleo_12345_67890_tiny-1.ipynb"))],
    ]
    assert [r.problems for r in reports] == [
        [],
        ["mystery.ipynb: names no known assignment; not imported"],
        ["../escape_tiny.ipynb: unsafe path in the archive; not imported"],
    ]
    assert notebook(course, "cleo") == CORRECT
    assert not (tmp_path / "escape_tiny.ipynb").exists()


def test_the_highest_resubmission_number_is_kept_whatever_the_dates(course, tmp_path, utc_plus_one):
    lms = make_zip(tmp_path / "lms.zip", {
        "zed_1_2_tiny.ipynb": (version(0), (2024, 3, 5, 10, 0, 0)),
        "zed_1_2_tiny-1.ipynb": (version(1), (2024, 3, 1, 10, 0, 0)),
        "zed_1_2_tiny-2.ipynb": (version(2), (2024, 3, 2, 10, 0, 0)),
    })
    report = collect(course, lms)
    assert report.imported == [("zed", "tiny", Path("zed_1_2_tiny-2.ipynb"))]
    assert report.set_aside == [
        "zed_1_2_tiny.ipynb, zed_1_2_tiny-1.ipynb: set aside for zed/tiny, which keeps "
        "zed_1_2_tiny-2.ipynb (highest resubmission number)"
    ] and report.problems == []
    assert notebook(course, "zed") == version(2)
    assert timestamp(course, "zed") == "2024-03-02 09:00:00.000000 UTC"


def test_browser_duplicates_count_as_resubmissions_after_the_lms_number(course, tmp_path):
    date = (2024, 3, 1, 10, 0, 0)
    lms = make_zip(tmp_path / "lms.zip", {
        "doejane_123_456_tiny.ipynb": (version(0), date),
        "doejane_123_456_tiny (2).ipynb": (version(2), date),
        "doejane_123_456_tiny (1).ipynb": (version(1), date),
        "roejohn_124_457_tiny (3).ipynb": (version(3), date),
        "roejohn_124_457_tiny-1.ipynb": (version(4), date),
    })
    report = collect(course, lms)
    assert report.imported == [
        ("doejane", "tiny", Path("doejane_123_456_tiny (2).ipynb")),
        ("roejohn", "tiny", Path("roejohn_124_457_tiny-1.ipynb")),
    ]
    assert [s.attempt for s in report.submissions] == [(0, 2), (1, 0)]
    assert report.set_aside == [
        "doejane_123_456_tiny.ipynb, doejane_123_456_tiny (1).ipynb: set aside for doejane/tiny, which keeps "
        "doejane_123_456_tiny (2).ipynb (highest resubmission number)",
        "roejohn_124_457_tiny (3).ipynb: set aside for roejohn/tiny, which keeps "
        "roejohn_124_457_tiny-1.ipynb (highest resubmission number)",
    ] and report.problems == []
    assert notebook(course, "doejane") == version(2) and notebook(course, "roejohn") == version(4)


def test_the_latest_date_decides_when_the_names_do_not(course, tmp_path, utc_plus_one):
    lms = make_zip(tmp_path / "lms.zip", {
        "zed_1_2_tiny.ipynb": (version(0), (2024, 3, 2, 8, 30, 0)),
        "zed_1_3_tiny.ipynb": (version(1), (2024, 3, 1, 23, 59, 58)),
    })
    report = collect(course, lms)
    assert report.imported == [("zed", "tiny", Path("zed_1_2_tiny.ipynb"))]
    assert report.set_aside == [
        "zed_1_3_tiny.ipynb: set aside for zed/tiny, which keeps zed_1_2_tiny.ipynb (latest submission time)"
    ]
    assert timestamp(course, "zed") == "2024-03-02 07:30:00.000000 UTC"


def test_a_tie_between_different_files_imports_none_of_them(course, tmp_path):
    date = (2024, 3, 1, 10, 0, 0)
    lms = make_zip(tmp_path / "lms.zip", {
        "zed_1_2_tiny.ipynb": (version(0), date),
        "zed_1_3_tiny.ipynb": (version(1), date),
        "amy_1_2_tiny.ipynb": (version(0), date),
        "amy_1_3_tiny.ipynb": (version(0), date),
    })
    report = collect(course, lms)
    assert report.imported == [("amy", "tiny", Path("amy_1_3_tiny.ipynb"))]
    assert report.set_aside == [
        "amy_1_2_tiny.ipynb: set aside for amy/tiny, which keeps amy_1_3_tiny.ipynb (the others are identical copies)"
    ]
    assert report.problems == [
        "zed_1_2_tiny.ipynb, zed_1_3_tiny.ipynb: submissions of zed/tiny with the same resubmission number "
        "and time, so none is known to be the newest; remove the others and collect again; not imported",
    ]
    assert not (course.submitted / "zed").exists()


def test_the_submission_time_is_the_zip_entry_date_not_the_collection_time(course, tmp_path, utc_plus_one):
    lms = make_zip(tmp_path / "lms.zip", {"ann_tiny.ipynb": (CORRECT, (2024, 3, 1, 10, 0, 0))})
    report = collect(course, lms)
    submitted = datetime(2024, 3, 1, 9, 0, 0, tzinfo=timezone.utc)
    assert [s.submitted for s in report.submissions] == [submitted]
    assert timestamp(course, "ann") == "2024-03-01 09:00:00.000000 UTC"
    assert (course.submitted / "ann" / "tiny" / "tiny.ipynb").stat().st_mtime == submitted.timestamp()


def test_folders_give_the_file_date_or_nbgraders_timestamp(course, tmp_path):
    folder = tmp_path / "in"
    (folder / "ann" / "tiny").mkdir(parents=True)
    (folder / "ann" / "tiny" / "tiny.ipynb").write_bytes(CORRECT)
    (folder / "ann" / "tiny" / "timestamp.txt").write_text("2024-03-04 12:00:00.123456 UTC")
    (folder / "ben_tiny.ipynb").write_bytes(CORRECT)
    seconds = datetime(2024, 3, 5, 8, 0, 0, tzinfo=timezone.utc).timestamp()
    os.utime(folder / "ben_tiny.ipynb", (seconds, seconds))
    report = collect(course, folder)
    assert report.imported == [("ann", "tiny", Path("ann/tiny/tiny.ipynb")), ("ben", "tiny", Path("ben_tiny.ipynb"))]
    assert report.problems == []  # nbgrader's timestamp.txt is part of its submission, not a stray file
    assert timestamp(course, "ann") == "2024-03-04 12:00:00.123456 UTC"
    assert timestamp(course, "ben") == "2024-03-05 08:00:00.000000 UTC"


def test_collecting_again_replaces_a_notebook_only_with_a_newer_one(course, tmp_path):
    def download(name: str, date: tuple[int, ...], data: bytes) -> Path:
        return make_zip(tmp_path / name, {"ann_tiny.ipynb": (data, date), "ben_tiny.ipynb": (version(0), date)})

    march_5, march_1 = (2024, 3, 5, 10, 0, 0), (2024, 3, 1, 10, 0, 0)
    collect(course, download("new.zip", march_5, version(2)))
    report = collect(course, download("old.zip", march_1, version(1)))  # an older download, collected last
    assert notebook(course, "ann") == version(2)  # kept, with its time
    newer = datetime.fromtimestamp(time.mktime((*march_5, 0, 0, -1)), tz=timezone.utc)
    assert timestamp(course, "ann") == timestamp(course, "ben") == f"{newer:%Y-%m-%d %H:%M:%S}.000000 UTC"
    assert report.imported == [] and report.problems == []
    assert report.set_aside == [f"{s}_tiny.ipynb: set aside for {s}/tiny, which keeps the newer notebook "
                                f"collected before ({newer:%Y-%m-%d %H:%M:%S} UTC)" for s in ("ann", "ben")]
    assert collect(course, download("new.zip", march_5, version(2))).problems == []  # the same again: no tie

    report = collect(course, download("tie.zip", march_5, version(3)))  # same time, other contents
    assert notebook(course, "ann") == version(2)
    assert [p.split(":")[0] for p in report.problems] == ["ann_tiny.ipynb"]
    assert "neither is known to be the newer" in report.problems[0]

    report = collect(course, download("later.zip", (2024, 3, 6, 10, 0, 0), version(4)))  # a resubmission
    assert notebook(course, "ann") == version(4)
    assert report.problems == [] and report.set_aside == []


def test_an_unusable_timestamp_is_unknown_not_a_crash(tmp_path):
    """nbgrader's exchange lets the student write timestamp.txt; grade and export read it."""
    for text in ("0001-01-01 00:00:00+01:00", "yesterday", "\xff\xfe"):
        (tmp_path / "timestamp.txt").write_text(text)
        assert submission_time(tmp_path) is None, text


def test_canvas_late_marker_is_kept(course, tmp_path):
    date = (2024, 3, 1, 10, 0, 0)
    lms = make_zip(tmp_path / "lms.zip", {
        "amy_LATE_5_6_tiny.ipynb": (CORRECT, date),
        "bob_7_8_tiny.ipynb": (CORRECT, date),
    })
    report = collect(course, lms)
    assert [(s.student, s.late) for s in report.submissions] == [("amy", True), ("bob", False)]
    # Canvas's user id (the first number) is what its gradebook import matches: kept for export.
    assert [s.lms_id for s in report.submissions] == ["5", "7"]
    assert (course.submitted / "amy" / "tiny" / "lms_id.txt").read_text() == "5"
    # The late mark is kept for export, and survives collecting the tree collect made.
    assert (course.submitted / "amy" / "tiny" / "lms_late.txt").is_file()
    assert not (course.submitted / "bob" / "tiny" / "lms_late.txt").exists()
    again = collect(course, course.submitted)
    assert again.problems == [] and [(s.student, s.late) for s in again.submissions] == [("amy", True), ("bob", False)]
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "amy_tiny.ipynb").write_bytes(CORRECT)
    collect(course, flat)  # a resubmission from outside the LMS: the old id and mark do not stay behind
    assert not (course.submitted / "amy" / "tiny" / "lms_id.txt").exists()
    assert not (course.submitted / "amy" / "tiny" / "lms_late.txt").exists()


def test_canvas_files_named_freely_need_the_assignment_named(course, tmp_path):
    lms = make_zip(tmp_path / "lms.zip", {"frankbo_1006_9006_mywork.ipynb": (CORRECT, (2024, 3, 1, 10, 0, 0))})
    unnamed = collect(course, lms)
    assert not unnamed.submissions and "names no known assignment" in unnamed.problems[0]
    named = collect(course, lms, "tiny")
    assert [(s.student, s.assignment, s.lms_id) for s in named.submissions] == [("frankbo", "tiny", "1006")]


def test_a_tree_collect_made_keeps_its_lms_ids(course, tmp_path):
    """Collecting submitted/ itself, or a copy of it into another course, carries lms_id.txt
    along (it used to be listed as "not a notebook", and deleted in place)."""
    lms = make_zip(tmp_path / "lms.zip", {"amy_5_6_tiny.ipynb": (CORRECT, (2024, 3, 1, 10, 0, 0))})
    collect(course, lms)
    in_place = collect(course, course.submitted)
    assert in_place.problems == [] and [s.lms_id for s in in_place.submissions] == ["5"]
    assert (course.submitted / "amy" / "tiny" / "lms_id.txt").read_text() == "5"
    other = make_course(tmp_path / "other")
    copied = collect(other, shutil.copytree(course.submitted, tmp_path / "copy"))
    assert copied.problems == [] and (other.submitted / "amy" / "tiny" / "lms_id.txt").read_text() == "5"


def test_every_file_is_imported_or_listed_but_system_files_are_skipped_quietly(course, tmp_path):
    date = (2024, 3, 1, 10, 0, 0)
    lms = make_zip(tmp_path / "lms.zip", {
        "ann_1_2_tiny.ipynb": (CORRECT, date),
        "frank_6666_7777_tiny.py": (b"print(1)\n", date),
        "frank_6666_7778_notes.txt": (b"hi", date),
        "README": (b"hi", date),
        "__MACOSX/._ann_1_2_tiny.ipynb": (b"\0", date),
        ".DS_Store": (b"\0", date),
        "sub/.DS_Store": (b"\0", date),
        "ann/tiny/.ipynb_checkpoints/tiny-checkpoint.ipynb": (CORRECT, date),
    })
    report = collect(course, lms)
    assert report.imported == [("ann", "tiny", Path("ann_1_2_tiny.ipynb"))]
    assert report.problems == [
        "README: not a notebook (no extension); not imported",
        "frank_6666_7777_tiny.py: not a notebook (.py); not imported",
        "frank_6666_7778_notes.txt: not a notebook (.txt); not imported",
    ]
    assert report.ignored == [
        Path(".DS_Store"), Path("__MACOSX/._ann_1_2_tiny.ipynb"),
        Path("ann/tiny/.ipynb_checkpoints/tiny-checkpoint.ipynb"), Path("sub/.DS_Store"),
    ]


def test_moodle_downloads_name_students_by_participant_number(course, tmp_path):
    date = (2024, 3, 1, 10, 0, 0)
    lms = make_zip(tmp_path / "moodle.zip", {
        "Jane Doe_12345_assignsubmission_file_/tiny (1).ipynb": (version(1), date),
        "John Roe_12346_assignsubmission_file_tiny.ipynb": (version(2), date),
        "Ann Poe_12347_assignsubmission_file_/Untitled.ipynb": (version(3), date),
        "Ann Poe_12347_assignsubmission_onlinetext_/onlinetext.html": (b"<p>hi</p>", date),
    })
    report = collect(course, lms)
    assert report.imported == [
        ("12345", "tiny", Path("Jane Doe_12345_assignsubmission_file_/tiny (1).ipynb")),
        ("12346", "tiny", Path("John Roe_12346_assignsubmission_file_tiny.ipynb")),
    ]
    assert report.problems == [
        "Ann Poe_12347_assignsubmission_file_/Untitled.ipynb: names no known assignment "
        "(a Moodle download holds one assignment: pass --assignment); not imported",
        "Ann Poe_12347_assignsubmission_onlinetext_/onlinetext.html: not a notebook (.html); not imported",
    ]
    report = collect(course, lms, "tiny")
    assert [s for s, _, _ in report.imported] == ["12345", "12346", "12347"]
    assert [s.lms_id for s in report.submissions] == ["12345", "12346", "12347"]
    assert notebook(course, "12347") == version(3)
    # Moodle's download has no late mark: nothing is reported late on its behalf.
    assert [s.late for s in report.submissions] == [False, False, False]
    assert not any((course.submitted / s / "tiny" / "lms_late.txt").exists() for s in ("12345", "12346", "12347"))


def test_assignment_names_ending_in_numbers_and_other_assignments(course, tmp_path):
    add_assignment(course, "tiny-1")
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("ann_tiny-1.ipynb", "ben_tiny-1-2.ipynb", "cleo_tiny.ipynb"):
        (folder / name).write_bytes(CORRECT)
    report = collect(course, folder)
    assert report.imported == [
        ("ann", "tiny-1", Path("ann_tiny-1.ipynb")),
        ("ben", "tiny-1", Path("ben_tiny-1-2.ipynb")),
        ("cleo", "tiny", Path("cleo_tiny.ipynb")),
    ]
    assert [s.attempt for s in report.submissions] == [(0, 0), (2, 0), (0, 0)]
    report = collect(course, folder, "tiny")
    assert report.imported == [("cleo", "tiny", Path("cleo_tiny.ipynb"))]
    assert report.problems == [
        "ann_tiny-1.ipynb: is tiny-1, not tiny (--assignment); not imported",
        "ben_tiny-1-2.ipynb: is tiny-1, not tiny (--assignment); not imported",
    ]


def run(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_mistakes_are_one_line_and_import_nothing(course, tmp_path, capsys):
    lms = make_zip(tmp_path / "lms.zip", {"ann_tiny.ipynb": (CORRECT, (2024, 3, 1, 10, 0, 0))})
    with pytest.raises(SourceError, match=r"^no assignment 'tinyy': .* does not exist \(known: tiny\)$"):
        collect(course, lms, "tinyy")
    status, out, err = run(capsys, "--course", str(course.root), "collect", str(lms), "--assignment", "tinyy")
    expected = course.solutions / "tinyy" / "tinyy.ipynb"
    assert (status, out, err) == (2, "", f"error: no assignment 'tinyy': {expected} does not exist (known: tiny)\n")
    status, out, err = run(capsys, "--course", str(course.root), "collect", str(tmp_path / "nothing.zip"))
    assert (status, out, err) == (2, "", f"error: {tmp_path / 'nothing.zip'}: no such file or folder\n")
    (tmp_path / "notes.txt").write_text("hi")
    status, out, err = run(capsys, "--course", str(course.root), "collect", str(tmp_path / "notes.txt"))
    assert (status, out, err) == (2, "", f"error: {tmp_path / 'notes.txt'}: neither a folder nor a zip file\n")
    status, out, err = run(capsys, "--course", str(tmp_path), "collect", str(lms))
    assert (status, out, err) == (
        2, "", f"error: {tmp_path / 'solutions'} holds no assignment: run from the course root or pass --course\n")
    assert not course.submitted.exists()


def test_a_zip_entry_that_repeats_a_name_is_listed_not_overwritten(course, tmp_path):
    lms = tmp_path / "lms.zip"
    with zipfile.ZipFile(lms, "w") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr(zipfile.ZipInfo("ann_tiny.ipynb", (2024, 3, 1, 10, 0, 0)), version(1))
        archive.writestr(zipfile.ZipInfo("ann_tiny.ipynb", (2024, 3, 2, 10, 0, 0)), version(2))
    report = collect(course, lms)
    assert report.imported == [("ann", "tiny", Path("ann_tiny.ipynb"))]
    assert report.problems == ["ann_tiny.ipynb: a second entry of this name in the archive; not imported"]
    assert notebook(course, "ann") == version(1)


def test_the_command_prints_problems_before_the_summary_when_piped(course, tmp_path):
    date = (2024, 3, 1, 10, 0, 0)
    lms = make_zip(tmp_path / "lms.zip", {
        "ann_1_2_tiny.ipynb": (CORRECT, date),
        "frank_6666_7777_tiny.py": (b"print(1)\n", date),
    })
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # block-buffered stdout, as in a pipe
    done = subprocess.run([sys.executable, "-m", "autograder", "--course", str(course.root), "collect", str(lms)],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "imported ann/tiny from ann_1_2_tiny.ipynb",
        "NOT IMPORTED: frank_6666_7777_tiny.py: not a notebook (.py); not imported",
        "1 imported, 1 problems",
    ]


def test_older_attempts_and_late_marks_are_shown_but_are_no_problem(course, tmp_path, capsys):
    date = (2024, 3, 1, 10, 0, 0)
    lms = make_zip(tmp_path / "lms.zip", {
        "ann_LATE_1_2_tiny.ipynb": (version(0), date),
        "bob_3_4_tiny.ipynb": (version(0), date),
        "bob_3_4_tiny-1.ipynb": (version(1), date),
    })
    assert cli.main(["--course", str(course.root), "collect", str(lms)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "imported ann/tiny from ann_LATE_1_2_tiny.ipynb (marked late by the LMS)",
        "imported bob/tiny from bob_3_4_tiny-1.ipynb",
        "older: bob_3_4_tiny.ipynb: set aside for bob/tiny, which keeps bob_3_4_tiny-1.ipynb (highest resubmission number)",
        "2 imported, 0 problems",
    ]


def test_files_named_freely_keep_their_own_resubmission_numbers(course, tmp_path):
    """With --assignment, a Moodle or Canvas file the student named freely, and a notebook in
    nbgrader's layout, are numbered by the suffix of their own name."""
    later, earlier = (2024, 3, 2, 10, 0, 0), (2024, 3, 1, 10, 0, 0)
    lms = make_zip(tmp_path / "lms.zip", {
        "Jane Doe_12345_assignsubmission_file_/my work.ipynb": (version(0), later),
        "Jane Doe_12345_assignsubmission_file_/my work (1).ipynb": (version(1), earlier),
        "frankbo_1006_9006_mywork.ipynb": (version(2), later),
        "frankbo_1006_9007_mywork-1.ipynb": (version(3), earlier),
        "ann/tiny/tiny.ipynb": (version(4), later),
        "ann/tiny/tiny-2.ipynb": (version(5), earlier),
    })
    report = collect(course, lms, "tiny")
    assert [(s.student, s.origin, s.attempt) for s in report.submissions] == [
        ("12345", Path("Jane Doe_12345_assignsubmission_file_/my work (1).ipynb"), (0, 1)),
        ("ann", Path("ann/tiny/tiny-2.ipynb"), (2, 0)),
        ("frankbo", Path("frankbo_1006_9007_mywork-1.ipynb"), (1, 0)),
    ]
    assert report.set_aside == [
        "Jane Doe_12345_assignsubmission_file_/my work.ipynb: set aside for 12345/tiny, which keeps "
        "Jane Doe_12345_assignsubmission_file_/my work (1).ipynb (highest resubmission number)",
        "ann/tiny/tiny.ipynb: set aside for ann/tiny, which keeps ann/tiny/tiny-2.ipynb (highest resubmission number)",
        "frankbo_1006_9006_mywork.ipynb: set aside for frankbo/tiny, which keeps frankbo_1006_9007_mywork-1.ipynb "
        "(highest resubmission number)",
    ] and report.problems == []
    assert [notebook(course, s) for s in ("12345", "ann", "frankbo")] == [version(1), version(5), version(3)]


def test_a_name_that_does_not_start_with_a_student_id_is_refused(course, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("Jane Doe_tiny.ipynb", "_tiny.ipynb", ".ann_tiny.ipynb", "ann_tiny.ipynb"):
        (folder / name).write_bytes(CORRECT)
    report = collect(course, folder)
    assert report.imported == [("ann", "tiny", Path("ann_tiny.ipynb"))]
    assert report.problems == [f"{name}: does not start with a student id; not imported"
                               for name in (".ann_tiny.ipynb", "Jane Doe_tiny.ipynb", "_tiny.ipynb")]
    assert sorted(p.name for p in course.submitted.iterdir()) == ["ann"]


def test_a_folder_in_nbgraders_layout_must_be_named_by_a_student_id(course, tmp_path):
    folder = tmp_path / "in"
    for student in ("Jane Doe", "-x", "ann"):
        (folder / student / "tiny").mkdir(parents=True)
        (folder / student / "tiny" / "tiny.ipynb").write_bytes(CORRECT)
    report = collect(course, folder)
    assert report.imported == [("ann", "tiny", Path("ann/tiny/tiny.ipynb"))]
    assert report.problems == [
        "-x/tiny/tiny.ipynb: has a folder name that is not a student id; not imported",
        "Jane Doe/tiny/tiny.ipynb: has a folder name that is not a student id; not imported",
    ]
    assert sorted(p.name for p in course.submitted.iterdir()) == ["ann"]


def test_the_notebook_collected_before_is_as_new_as_its_timestamp_or_else_its_file(course, tmp_path):
    """nbgrader's timestamp.txt, not the file's date (touched since, say), dates the notebook
    collected before; a notebook put there by hand, without one, is dated by its file."""
    def download(name: str, date: tuple[int, ...], data: bytes) -> Path:
        return make_zip(tmp_path / name, {"ann_tiny.ipynb": (data, date)})

    collect(course, download("first.zip", (2024, 3, 5, 10, 0, 0), version(1)))
    target = course.submitted / "ann" / "tiny" / "tiny.ipynb"
    opened = datetime(2024, 3, 9, 12, 0, 0, tzinfo=timezone.utc).timestamp()
    os.utime(target, (opened, opened))  # opened and saved in Jupyter after collecting
    report = collect(course, download("resubmitted.zip", (2024, 3, 6, 10, 0, 0), version(2)))
    assert report.imported == [("ann", "tiny", Path("ann_tiny.ipynb"))] and report.set_aside == []
    assert notebook(course, "ann") == version(2)

    by_hand = submit(course, "ben", "correct")
    seconds = datetime(2024, 3, 7, 8, 0, 0, tzinfo=timezone.utc).timestamp()
    os.utime(by_hand, (seconds, seconds))
    older = make_zip(tmp_path / "older.zip", {"ben_tiny.ipynb": (version(3), (2024, 3, 1, 10, 0, 0))})
    report = collect(course, older)
    assert report.imported == [] and report.problems == []
    assert report.set_aside == ["ben_tiny.ipynb: set aside for ben/tiny, which keeps the newer notebook collected "
                                "before (2024-03-07 08:00:00 UTC)"]
    assert notebook(course, "ben") == CORRECT


def test_a_name_that_names_two_assignments_is_refused_even_with_the_assignment_given(course, tmp_path):
    add_assignment(course, "TINY")  # names are compared without case
    lms = make_zip(tmp_path / "lms.zip", {
        "Jane Doe_12345_assignsubmission_file_/tiny.ipynb": (version(1), (2024, 3, 1, 10, 0, 0)),
        "ann_tiny.ipynb": (version(2), (2024, 3, 1, 10, 0, 0)),
    })
    report = collect(course, lms, "tiny")
    assert report.imported == []
    assert report.problems == [
        "Jane Doe_12345_assignsubmission_file_/tiny.ipynb: names several assignments (TINY, tiny); not imported",
        "ann_tiny.ipynb: names several assignments (TINY, tiny); not imported",
    ]


def test_an_entry_that_cannot_be_opened_is_listed_and_the_others_imported(course, tmp_path):
    """An encrypted entry is named as such, nothing of it is written, and the others are imported."""
    lms = make_zip(tmp_path / "lms.zip", {"ann_tiny.ipynb": (version(1), (2024, 3, 1, 10, 0, 0)),
                                          "ben_tiny.ipynb": (version(2), (2024, 3, 1, 10, 0, 0))})
    data = bytearray(lms.read_bytes())
    data[data.index(b"PK\x01\x02") + 8] |= 0x1  # ann's entry in the central directory: encrypted
    lms.write_bytes(bytes(data))
    report = collect(course, lms)
    assert report.imported == [("ben", "tiny", Path("ben_tiny.ipynb"))]
    assert report.problems == ["ann_tiny.ipynb: encrypted (password-protected) in the archive; not imported"]
    assert notebook(course, "ben") == version(2) and not (course.submitted / "ann").exists()


def test_the_lms_id_kept_beside_a_notebook_is_read_back_only_when_it_is_an_id(tmp_path):
    """export reads it into its CSV's lms_id column and matches the LMS's file by it."""
    assert collected_lms_id(tmp_path) == ""  # collected from a folder: no LMS id
    for text, read in (("1234\n", "1234"), ("../x", ""), (b"\xff\xfe", "")):
        (tmp_path / "lms_id.txt").write_bytes(text if isinstance(text, bytes) else text.encode())
        assert collected_lms_id(tmp_path) == read, text
