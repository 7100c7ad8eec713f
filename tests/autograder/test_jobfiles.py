"""The runner's copy of each cell's records (autograder/jobfiles.py): what a cell recorded
stays as recorded, whatever later cells do to the records file or the arrays."""

import io
import json
import os

import numpy as np
import pytest

from autograder.checks import RECORDS_FILE, check
from autograder.execute import read_records
from autograder.jobfiles import RecordCollector, TamperedFileError, parse_record_line, read_job_file


def collected(sink_path) -> list[dict]:
    return read_records(sink_path.read_bytes())


def test_records_are_kept_as_they_were_when_their_cell_ended(tmp_path, monkeypatch):
    checks = tmp_path / "checks"
    monkeypatch.setenv("AUTOGRADER_CHECKS", str(checks))
    sink_path = tmp_path / "sink"
    sink = os.open(sink_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    collector = RecordCollector(checks, sink, RECORDS_FILE)

    check("a", np.array([1.0, 2.0]))  # cell 3 records an array
    collector.collect(3)
    records = (checks / RECORDS_FILE).read_text()
    array_file = checks / json.loads(records)["value"]["file"]
    np.save(array_file, np.array([9.0, 9.0]))  # cell 4 rewrites that array and the line,
    (checks / RECORDS_FILE).write_text(records.replace('"a"', '"b"'))
    with open(checks / RECORDS_FILE, "a") as f:  # adds a line with "\r" in front, one left open,
        f.write("\r" + json.dumps({"name": "c", "value": {"kind": "int", "value": 1}}) + "\n")
        f.write(json.dumps({"name": "open", "value": {"kind": "int", "value": 2}}))
    collector.collect(4)
    check("d", 5)  # cell 5 swaps in another file (a copy with changed values, say)
    (checks / RECORDS_FILE).unlink()
    check("e", 6)
    collector.collect(5)
    check("f", 7)  # cell 6 appends to it
    collector.collect(6)
    os.close(sink)

    records = collected(sink_path)
    assert [(r["cell"], r["name"]) for r in records] == [(3, "a"), (4, "c"), (6, "f")]
    assert np.load(io.BytesIO(records[0]["value"]["npy"])).tolist() == [1.0, 2.0]
    assert collector.tampered == [f"{RECORDS_FILE} was replaced or truncated (check() only appends); what it held "
                                  "then was not collected"]


def test_a_linked_records_file_is_tampering_not_read(tmp_path):
    checks = tmp_path / "checks"
    checks.mkdir()
    os.symlink("/dev/zero", checks / RECORDS_FILE)
    sink = os.open(tmp_path / "sink", os.O_WRONLY | os.O_CREAT)
    collector = RecordCollector(checks, sink, RECORDS_FILE)
    collector.collect(0)
    os.close(sink)
    assert collector.tampered == [f"{RECORDS_FILE} is a symbolic link (not followed)"]


def test_records_too_deep_or_too_wide_to_parse_are_skipped_and_flagged(tmp_path):
    checks = tmp_path / "checks"
    checks.mkdir()
    lines = ['{"name": "deep", "value": ' + "[" * 200_000 + "]" * 200_000 + "}",
             '{"name": "wide", "value": {"kind": "sequence", "items": [' + ",".join(["{}"] * 200_000) + "]}}",
             json.dumps({"name": "fine", "value": {"kind": "int", "value": 1}})]
    (checks / RECORDS_FILE).write_text("\n".join(lines) + "\n")
    sink_path = tmp_path / "sink"
    sink = os.open(sink_path, os.O_WRONLY | os.O_CREAT)
    collector = RecordCollector(checks, sink, RECORDS_FILE)
    collector.collect(0)
    os.close(sink)
    assert [r["name"] for r in collected(sink_path)] == ["fine"]
    assert len(collector.tampered) == 1 and "over 100000 JSON objects and lists) was not collected" in collector.tampered[0]


def test_a_job_cannot_make_the_grader_hold_more_than_its_node_budget(tmp_path):
    """Each record may have 100,000 objects and lists; a job's records together 1,000,000
    (parsed JSON takes ~24 times its text): past that, nothing more is collected, and the
    submission is flagged."""
    checks = tmp_path / "checks"
    checks.mkdir()
    wide = '{"name": "wide", "value": {"kind": "sequence", "items": [' + ",".join(["{}"] * 90_000) + "]}}"
    (checks / RECORDS_FILE).write_text("\n".join([wide] * 12) + "\n")
    sink_path = tmp_path / "sink"
    sink = os.open(sink_path, os.O_WRONLY | os.O_CREAT)
    collector = RecordCollector(checks, sink, RECORDS_FILE)
    collector.collect(0)
    os.close(sink)
    assert len(collected(sink_path)) == 12 - 1  # the 12th would pass 1,000,000
    assert "more records than a job may make" in collector.tampered[0]


def test_an_honest_value_too_large_to_record_is_recorded_as_such_not_flagged(tmp_path, monkeypatch):
    """A buggy but honest answer can return a list of 100,000 numbers: check() records it as
    too large (the check then fails with that reason), and nothing reads as tampering."""
    checks = tmp_path / "checks"
    monkeypatch.setenv("AUTOGRADER_CHECKS", str(checks))
    check("losses", [0.5] * 100_000)
    check("brackets", "[" * 200_000)  # a string is counted too: what parsing it costs is not known
    check("fine", [0.5, 0.25])
    sink_path = tmp_path / "sink"
    sink = os.open(sink_path, os.O_WRONLY | os.O_CREAT)
    collector = RecordCollector(checks, sink, RECORDS_FILE)
    collector.collect(2)
    os.close(sink)
    records = {r["name"]: r["value"] for r in collected(sink_path)}
    assert collector.tampered == []
    assert records["losses"] == {"kind": "unsupported", "type": "list",
                                 "error": "too large to record (over 100,000 JSON objects and lists)"}
    assert records["brackets"]["error"].startswith("too large to record")
    assert [item["value"] for item in records["fine"]["items"]] == [0.5, 0.25]


def test_records_past_the_byte_budget_are_one_limit_message_not_a_false_tamper(tmp_path, monkeypatch):
    checks = tmp_path / "checks"
    monkeypatch.setenv("AUTOGRADER_CHECKS", str(checks))
    sink_path = tmp_path / "sink"
    sink = os.open(sink_path, os.O_WRONLY | os.O_CREAT)
    collector = RecordCollector(checks, sink, RECORDS_FILE, budget=400)
    check("short", 1)
    check("long", "x" * 1000)  # the budget ends inside this line
    for cell in range(1, 6):  # later cells used to read the rest of it and call it not a record
        collector.collect(cell)
        check(f"later/{cell}", cell)
    os.close(sink)
    assert [r["name"] for r in collected(sink_path)] == ["short"]
    assert len(collector.tampered) == 1 and collector.tampered[0].startswith("more records than a job may make")


def test_a_job_file_is_read_up_to_its_limit_or_by_its_tail(tmp_path):
    """The grader never reads more of a job's file than it allows: a larger file is tampering,
    or (a log, say) only its last bytes are read."""
    (tmp_path / "log.txt").write_bytes(b"0123456789")
    assert read_job_file(tmp_path, "log.txt", 10) == b"0123456789"
    with pytest.raises(TamperedFileError, match="log.txt is larger than 9 bytes"):
        read_job_file(tmp_path, "log.txt", 9)
    assert read_job_file(tmp_path, "log.txt", 4, tail=True) == b"6789"
    assert read_job_file(tmp_path, "log.txt", 20, tail=True) == b"0123456789"
    assert read_job_file(tmp_path, "missing.txt", 10) is None


def test_cells_that_record_nothing_are_not_tampering(tmp_path, monkeypatch):
    """A records file that did not grow since the last cell is not one replaced or truncated."""
    checks = tmp_path / "checks"
    monkeypatch.setenv("AUTOGRADER_CHECKS", str(checks))
    sink = os.open(tmp_path / "sink", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    collector = RecordCollector(checks, sink, RECORDS_FILE)
    check("a", 1)
    for cell in (1, 2, 3):
        collector.collect(cell)
    check("b", 2)
    collector.collect(4)
    os.close(sink)
    assert [(r["cell"], r["name"]) for r in collected(tmp_path / "sink")] == [(1, "a"), (4, "b")]
    assert collector.tampered == []


@pytest.mark.parametrize("line", [b"[1]", b"1", b'"text"', b'{"value": {"kind": "int"}}', b'{"name": "a", "value": 3}'])
def test_lines_that_are_not_records_are_refused(line):
    assert parse_record_line(line) is None
