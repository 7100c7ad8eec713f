"""Moodle's grading worksheet: one student id per person across assignments, grades going back."""

import csv
import shutil
import unicodedata
import zipfile
from pathlib import Path

import pytest

from autograder import cli
from autograder.collect import collect
from autograder.export import moodle_files
from autograder.worksheet import Grade, WorksheetError, read_worksheet, same_person, write_grades
from tests.autograder.conftest import FIXTURES, collected, grade_written_answer, graded
from tests.autograder.test_collect import make_zip, version

WORKSHEET = FIXTURES / "moodle_worksheet.csv"  # as Moodle writes it: UTF-8 with a BOM, quoted
DATE = (2024, 3, 1, 10, 0, 0)


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_participants_are_named_by_their_email_address():
    sheet = read_worksheet(WORKSHEET)
    assert [sheet.header[i] for i in (sheet.identifier, sheet.name, sheet.email, sheet.grade, sheet.maximum)] == [
        "Identifier", "Full name", "Email address", "Grade", "Maximum Grade"]  # the BOM is not part of a name
    assert {n: (p.student, p.name) for n, p in sheet.participants.items()} == {
        "12345": ("jane.doe", "Jane Doe"), "12346": ("jroe", "John O'Roe"), "12347": ("ann.poe", "Ann Poe"),
        "12348": ("max", "Max Moe")}
    assert sheet.without_email == {"12349"}
    assert sheet.student("12345", "Jane Doe") == "jane.doe"
    with pytest.raises(WorksheetError, match="participant 12345 is 'John Roe' in the download but 'Jane Doe'"):
        sheet.student("12345", "John Roe")
    with pytest.raises(WorksheetError, match="participant 99999 is not in the worksheet moodle_worksheet.csv"):
        sheet.student("99999", "Jane Doe")
    with pytest.raises(WorksheetError, match="participant 12349 has no email address"):
        sheet.student("12349", "Sue Shy")


def test_an_address_with_a_quoted_at_sign_keeps_its_whole_local_part(tmp_path):
    """An address's local part may hold a quoted "@" (RFC 5321): the domain starts after the last one."""
    sheet = read_worksheet(write(tmp_path / "sheet.csv", 'Identifier,Full name,Email address\n'
                                                         'Participant 1,A B,"""a@b""@x.example"\n'))
    assert sheet.participants["1"].student == "a-b-"


def test_names_are_compared_as_moodle_writes_them_into_folders():
    assert same_person("John ORoe", "John O'Roe")  # punctuation dropped
    assert same_person("jane  DOE", "Jane Doe")
    assert same_person(unicodedata.normalize("NFD", "Jörg Groß"), "Jörg Groß")  # a zip unpacked on macOS
    assert same_person("Participant", "Jane Doe")  # anonymous: nothing to compare
    assert not same_person("Jane Roe", "Jane Doe")
    assert not same_person("Mary-Jane Doe", "Jane Doe") and not same_person("Joann Lee", "Ann Lee")
    assert not same_person("", "Jane Doe") and not same_person("Jane Doe", "")


def test_worksheets_in_another_language_are_read_by_position(tmp_path):
    german = write(tmp_path / "bewertung.csv",
                   '"ID","Vollständiger Name","E-Mail-Adresse","Status","Bewertung","Bestwertung","Änderbar"\n'
                   '"Teilnehmer/in 501","Jörg Groß",JG@uni.example,"Zur Bewertung abgegeben",,"10,00",Ja\n')
    sheet = read_worksheet(german)
    assert sheet.participants["501"].student == "jg" and sheet.participants["501"].name == "Jörg Groß"
    assert (sheet.header[sheet.grade], sheet.header[sheet.maximum]) == ("Bewertung", "Bestwertung")
    with_phones = write(tmp_path / "telefon.csv",  # identity fields that are numbers too
                        '"ID","Vollständiger Name","E-Mail-Adresse","Telefon","Mobil","Status","Bewertung",'
                        '"Bestwertung"\n"Teilnehmer/in 501","A B",a@x.example,0301234,0170111,"abgegeben",,"10,00"\n'
                        '"Teilnehmer/in 502","C D",c@x.example,0305678,0170222,"abgegeben","7,50","10,00"\n')
    sheet = read_worksheet(with_phones)
    assert (sheet.header[sheet.grade], sheet.header[sheet.maximum]) == ("Bewertung", "Bestwertung")
    id_numbers = write(tmp_path / "idnummer.csv",  # an identity field left empty, before the addresses
                       '"ID","Vollständiger Name","ID-Nummer","E-Mail-Adresse","Status","Bewertung","Bestwertung"\n'
                       '"Teilnehmer/in 501","A B",,a@x.example,"abgegeben",,"10,00"\n')
    assert read_worksheet(id_numbers).participants["501"].student == "a"


def test_spreadsheet_edits_are_read_as_moodle_would(tmp_path):
    """Saved again by a spreadsheet: semicolons, blank rows, a quoted line break."""
    sheet = read_worksheet(write(tmp_path / "sheet.csv",
                                 'Identifier;Full name;Email address;Grade;Maximum Grade;Feedback comments\n'
                                 'Participant 7;Ann Poe;ann@x.example;;10,00;"two\nlines"\n;;;;;\n'
                                 'Participant 8;Bo Bee;bo@x.example;;10,00;\n'))
    assert sheet.delimiter == ";" and sorted(sheet.participants) == ["7", "8"] and len(sheet.rows) == 2
    assert sheet.rows[0][5] == "two\nlines"  # written back as it was
    with pytest.raises(WorksheetError, match="line 4: participant 7 is listed twice"):  # lines, not rows
        read_worksheet(write(tmp_path / "twice.csv", 'Identifier,Full name,Email address,Feedback comments\n'
                                                     'Participant 7,Ann Poe,a@x.example,"two\nlines"\n'
                                                     'Participant 7,Ann Poe,a@x.example,\n'))


@pytest.mark.parametrize("content, message", [
    ('"Identifier","Full name","Email address"\n"Participant 1","A B",ab@x.example\n'
     '"Participant 2","A C",AB@y.example\n', "ab@x.example and AB@y.example would both be student 'ab'"),
    ('"Identifier","Full name","Email address"\n"Participant 1","A B",a@x.example\n"Participant 1","A B",b@x.example\n',
     "line 3: participant 1 is listed twice"),
    ('"Identifier","Full name","Email address"\n"Jane","A B",a@x.example\n', "line 2: 'Jane' in column 'Identifier'"),
    ('"Identifier","Full name","Status"\n"Participant 1","Participant 1","Submitted"\n',
     "no email addresses in it .* reveal identities"),  # anonymous submissions
    ('"Identifier","Full name","Email address"\n"Participant 1","Participant 1",\n',
     "no email addresses in it"),  # the column is there, the addresses are not
    (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\xe9\xff", "not a readable CSV worksheet"),  # an .xlsx, say
    ('"Identifier","Full name","Email address"\n"Participant 1","A B",@x.example\n', "no student id can be made"),
    ('student,score\n', "no participants in it"),
    ('"Identifier","Full name","Email address","Grade","grade"\n"Participant 1","A B",a@x.example,,\n',
     "the column 'grade' appears twice"),
])
def test_a_worksheet_that_cannot_name_students_is_refused_with_the_reason(tmp_path, content, message):
    with pytest.raises(WorksheetError, match=message):
        read_worksheet(write(tmp_path / "sheet.csv", content))


def test_collect_names_moodle_students_by_email_and_keeps_the_participant_number(course, tmp_path):
    lms = make_zip(tmp_path / "moodle.zip", {
        "Jane Doe_12345_assignsubmission_file_/my work.ipynb": (version(1), DATE),
        "John ORoe_12346_assignsubmission_file_/tiny.ipynb": (version(2), DATE),
        "Ann Poe_12347_assignsubmission_file_/tiny.ipynb": (version(3), DATE),
        "Sue Shy_12349_assignsubmission_file_/tiny.ipynb": (version(4), DATE),
        "Bo Bee_12350_assignsubmission_file_/tiny.ipynb": (version(5), DATE),
    })
    sheet = read_worksheet(WORKSHEET)
    with pytest.raises(ValueError, match="belongs to one assignment: name it with --assignment"):
        collect(course, lms, None, sheet)
    report = collect(course, lms, "tiny", sheet)
    assert [(s.student, s.lms_id) for s in report.submissions] == [
        ("ann.poe", "12347"), ("jane.doe", "12345"), ("jroe", "12346")]
    assert (course.submitted / "jane.doe" / "tiny" / "tiny.ipynb").read_bytes() == version(1)
    assert (course.submitted / "jane.doe" / "tiny" / "lms_id.txt").read_text() == "12345"
    assert report.problems == [
        "Bo Bee_12350_assignsubmission_file_/tiny.ipynb: participant 12350 is not in the worksheet "
        "moodle_worksheet.csv (is it the worksheet of another assignment?); not imported",
        "Sue Shy_12349_assignsubmission_file_/tiny.ipynb: participant 12349 has no email address in the "
        "worksheet moodle_worksheet.csv; not imported",
    ]


def test_a_file_named_like_a_moodle_folder_does_not_change_whose_it_is(course, tmp_path):
    """Moodle names the outer folder; the student names what is inside it."""
    lms = make_zip(tmp_path / "moodle.zip", {
        "Jane Doe_12345_assignsubmission_file_/tiny.ipynb": (version(1), DATE),
        "Ann Poe_12347_assignsubmission_file_/_12345_assignsubmission_file_tiny-9.ipynb": (version(2), DATE),
    })
    for sheet, jane, ann in ((read_worksheet(WORKSHEET), "jane.doe", "ann.poe"), (None, "12345", "12347")):
        report = collect(course, lms, "tiny", sheet)
        assert sorted((s.student, s.lms_id) for s in report.submissions) == sorted([(ann, "12347"), (jane, "12345")])
        assert report.problems == [] and report.set_aside == []
        assert (course.submitted / jane / "tiny" / "tiny.ipynb").read_bytes() == version(1)


def test_collect_refuses_the_worksheet_of_another_assignment(course, tmp_path):
    lms = make_zip(tmp_path / "moodle.zip", {"Jane Doe_12346_assignsubmission_file_/tiny.ipynb": (version(1), DATE)})
    report = collect(course, lms, "tiny", read_worksheet(WORKSHEET))  # 12346 is John O'Roe in this worksheet
    assert report.submissions == [] and not (course.submitted / "jroe").exists()
    assert report.problems == ["Jane Doe_12346_assignsubmission_file_/tiny.ipynb: participant 12346 is 'Jane Doe' "
                               "in the download but \"John O'Roe\" in the worksheet moodle_worksheet.csv (is it the "
                               "worksheet of another assignment?); not imported"]


def read_sheet(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def test_export_fills_in_the_grades_of_submissions_graded_in_full(course):
    for student, number, score in (("jane.doe", "12345", 2.0), ("jroe", "12346", 0.0), ("ann.poe", "12347", 2.0),
                                   ("kim", "", 2.0), ("gone", "12360", 2.0),
                                   ("mallory", "012345", 2.0),  # a planted lms_id.txt: Jane's number
                                   ("12346", "12346", 2.0)):  # jroe collected once without the worksheet
        graded(course, student, score)
        if number:
            collected(course, student, number)
    for student in ("jane.doe", "jroe", "kim", "gone", "mallory", "12346"):
        grade_written_answer(course, student, 1.0)  # ann.poe's written answer is not graded yet
    for student in ("jane.doe", "ann.poe", "mallory"):  # feedback pages: jroe's not written yet
        page = course.feedback / student / "tiny" / "feedback.html"
        page.parent.mkdir(parents=True)
        page.write_text(f"<p>{student}</p>")
    moodle = moodle_files(course, "tiny", read_worksheet(WORKSHEET))
    path, filled, notes = moodle.grades, moodle.filled, moodle.notes

    assert path == course.exports / "tiny-moodle.csv" and path.read_bytes().startswith(b"\xef\xbb\xbf")
    rows = read_sheet(path)
    original = read_sheet(WORKSHEET)
    assert [list(r) for r in rows] == [list(r) for r in original]  # same columns, same rows, same order
    # Totals 6 and 4 of 6, scaled to Moodle's maximum of 100.
    assert [r["Grade"] for r in rows] == ["100.00", "66.67", "", "", ""]
    assert [{k: v for k, v in r.items() if k != "Grade"} for r in rows] == [
        {k: v for k, v in r.items() if k != "Grade"} for r in original]
    assert filled == 2
    assert notes == [
        "grades scaled to Moodle's maximum grade 100 (the assignment's maximum: 6)",
        "one participant number, several students: participant 12346 (jroe, 12346: kept jroe)",
        "another student's participant number in this worksheet; left blank: mallory (participant 12345 is "
        "jane.doe there)",
        "not in the worksheet: gone (participant 12360)",
        "no participant number (not collected from a Moodle download): kim",
        "left blank for your review: ann.poe (1 point not graded yet)",
        "no feedback page (run feedback tiny): jroe",
    ]
    # Moodle reads "<name>_<participant>_assignfeedback_file_<file>": only graded students' pages.
    with zipfile.ZipFile(moodle.feedback_zip) as archive:
        assert archive.namelist() == ["participant_12345_assignfeedback_file_feedback.html"]
        assert archive.read(archive.namelist()[0]) == b"<p>jane.doe</p>"


@pytest.mark.parametrize("number, why", [
    ("99001", "not in the worksheet"),  # Moodle's numbers are unique across assignments: the usual case
    ("12346", "listed as another student"),
])
def test_export_refuses_the_worksheet_of_another_assignment(course, number, why):
    graded(course, "jane.doe", 2.0)
    collected(course, "jane.doe", number)
    with pytest.raises(WorksheetError, match=r"moodle_worksheet.csv is not the worksheet of these submissions: none "
                                             r"of their 1 participant numbers .* nothing written"):
        moodle_files(course, "tiny", read_worksheet(WORKSHEET))
    assert not (course.exports / "tiny-moodle.csv").exists()


def test_grades_are_written_as_moodle_reads_them(course, tmp_path):
    sheet = write(tmp_path / "sheet.csv", "Identifier,Full name,Email address,Grade,Maximum Grade\n"
                                          "Participant 1,A A,a@x.example,,\"10,00\"\n"  # a comma for decimals
                                          "Participant 2,B B,b@x.example,50.00,100.00\n"  # graded in Moodle before
                                          "Participant 3,C C,c@x.example,,none\n"
                                          "Participant 4,D D,d@x.example,,6\n"
                                          "Participant 5,E E,e@x.example,,0.00\n"
                                          "Participant 6,F F,f@x.example,,1\n")  # the smallest maximum
    for student, number, written in (("a", "1", 1.0), ("b", "2", 1.0), ("c", "3", 1.0), ("d", "4", 2.0),
                                     ("e", "5", 1.0), ("f", "6", 1.0)):
        graded(course, student, 2.0)
        collected(course, student, number)
        grade_written_answer(course, student, written)  # d: 2 of 1 point, extra credit given by hand
    moodle = moodle_files(course, "tiny", read_worksheet(sheet))
    assert [r["Grade"] for r in read_sheet(moodle.grades)] == ["10,00", "100.00", "", "7.00", "", "1.00"]
    assert moodle.notes == [
        "grades scaled to Moodle's maximum grade 1, 10, 100 (the assignment's maximum: 6)",
        "left blank, Moodle's maximum grade unreadable: c ('none'), e ('0.00')",
        "above Moodle's maximum grade, which its upload skips: d",
        "replaced a grade already in the worksheet: b (was 50.00)",
        "no feedback page (run feedback tiny): a, b, d, f",
    ]


def test_flagged_and_ungraded_submissions_are_held_back(course):
    result = graded(course, "jane.doe", 2.0)
    result.status = "problem"
    result.save(course.autograded / "jane.doe" / "tiny" / "result.json")
    grade_written_answer(course, "jane.doe", 1.0)
    collected(course, "jane.doe", "12345")
    collected(course, "jroe", "12346")  # collected, not graded
    moodle = moodle_files(course, "tiny", read_worksheet(WORKSHEET))
    assert (moodle.filled, moodle.feedback_zip) == (0, None)
    assert "left blank for your review: jane.doe (status problem), jroe (not graded)" in moodle.notes


def test_the_commands_collect_and_export_with_a_worksheet(course, tmp_path, capsys):
    lms = make_zip(tmp_path / "moodle.zip", {"Jane Doe_12345_assignsubmission_file_/tiny.ipynb": (version(1), DATE)})
    sheet = shutil.copyfile(WORKSHEET, tmp_path / "sheet.csv")
    root = ["--course", str(course.root)]
    assert cli.main([*root, "collect", str(lms), "--worksheet", str(sheet)]) == 2
    assert "a Moodle worksheet belongs to one assignment" in capsys.readouterr().err
    assert cli.main([*root, "collect", str(lms), "--assignment", "tiny", "--worksheet", str(sheet)]) == 0
    assert "imported jane.doe/tiny from Jane Doe_12345_assignsubmission_file_/tiny.ipynb" in capsys.readouterr().out
    graded(course, "jane.doe", 2.0)
    grade_written_answer(course, "jane.doe", 1.0)
    assert cli.main([*root, "export", "tiny", "--worksheet", str(sheet)]) == 0
    out = capsys.readouterr().out
    assert f"Moodle worksheet: {course.exports / 'tiny-moodle.csv'} (1 grade filled in;" in out
    assert read_sheet(course.exports / "tiny-moodle.csv")[0]["Grade"] == "100.00"
    assert "no feedback page (run feedback tiny): jane.doe" in out and "Moodle feedback:" not in out
    assert cli.main([*root, "feedback", "tiny"]) == 0
    assert cli.main([*root, "export", "tiny", "--worksheet", str(sheet)]) == 0
    assert f"Moodle feedback: {course.exports / 'tiny-moodle-feedback.zip'}" in capsys.readouterr().out
    assert cli.main([*root, "export", "tiny", "--worksheet", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: no such file" in capsys.readouterr().err


def test_a_grade_changed_during_export_reaches_the_csv_and_the_worksheet_alike(course, monkeypatch):
    """export reads the gradebook once: the CSV, the report and the LMS's file hold the same
    grades even when an instructor grades while it runs."""
    import autograder.export

    graded(course, "jane.doe", 2.0)
    grade_written_answer(course, "jane.doe", 1.0)
    collected(course, "jane.doe", "12345")
    read = autograder.export.final_scores

    def read_then_regrade(course_, assignment):
        rows = read(course_, assignment)
        grade_written_answer(course, "jane.doe", 0.0)  # formgrader, meanwhile
        return rows

    monkeypatch.setattr(autograder.export, "final_scores", read_then_regrade)
    assert cli.main(["--course", str(course.root), "export", "tiny", "--worksheet", str(WORKSHEET)]) == 0
    with open(course.exports / "tiny.csv", newline="", encoding="utf-8") as f:
        [row] = list(csv.DictReader(f))
    assert (row["student"], row["total"]) == ("jane.doe", "6")
    assert read_sheet(course.exports / "tiny-moodle.csv")[0]["Grade"] == "100.00"


def test_a_spreadsheet_row_without_its_trailing_empty_cells_is_read(tmp_path):
    """A spreadsheet may save a row without its empty last cells: they read as empty."""
    german = write(tmp_path / "bewertung.csv",
                   '"ID","Vollständiger Name","E-Mail-Adresse","Status","Bewertung","Bestwertung","Änderbar"\n'
                   '"Teilnehmer/in 501","Jörg Groß",JG@uni.example,"abgegeben",,"10,00",Ja\n'
                   '"Teilnehmer/in 502","C D",c@x.example,"abgegeben","7,50","10,00"\n')
    sheet = read_worksheet(german)
    assert (sheet.header[sheet.grade], sheet.header[sheet.maximum]) == ("Bewertung", "Bestwertung")
    assert {n: p.student for n, p in sheet.participants.items()} == {"501": "jg", "502": "c"}
    no_address = write(tmp_path / "sheet.csv", "Identifier,Full name,Email address,Status\n"
                                               "Participant 1,A B,a@x.example,Submitted\nParticipant 2,C D\n")
    assert read_worksheet(no_address).without_email == {"2"}
    no_status = write(tmp_path / "ohne_status.csv",  # the grade right after the addresses
                      '"ID","Vollständiger Name","E-Mail-Adresse","Bewertung","Bestwertung"\n'
                      '"Teilnehmer/in 501","Jörg Groß",JG@uni.example,,"10,00"\n')
    sheet = read_worksheet(no_status)
    assert (sheet.header[sheet.grade], sheet.header[sheet.maximum]) == ("Bewertung", "Bestwertung")


def test_without_a_maximum_grade_column_grades_are_written_as_points(tmp_path):
    sheet = read_worksheet(write(tmp_path / "sheet.csv", "Identifier,Full name,Email address,Grade\n"
                                                         "Participant 1,A A,a@x.example,\n"
                                                         "Participant 2,B B,b@x.example\n"))
    out = tmp_path / "out.csv"
    filled, notes = write_grades(sheet, [Grade("a", "1", 4.0), Grade("b", "2", 6.0)], 6.0, out)
    assert filled == [Grade("a", "1", 4.0), Grade("b", "2", 6.0)]
    assert notes == ["no Maximum Grade column: grades written as points out of 6"]
    assert out.read_bytes().decode("utf-8-sig").splitlines() == [
        "Identifier,Full name,Email address,Grade", "Participant 1,A A,a@x.example,4.00",
        "Participant 2,B B,b@x.example,6.00"]


def test_an_identity_field_with_some_addresses_is_not_taken_for_the_email_column(tmp_path):
    """By position, the email column is the one whose every filled cell is an address: a
    user name that is an address for some students only is not it."""
    sheet = read_worksheet(write(tmp_path / "sheet.csv",
                                 '"ID","Vollständiger Name","Nutzername","E-Mail-Adresse","Status"\n'
                                 '"Teilnehmer/in 1","A B",ab@campus,a.b@uni.example,"abgegeben"\n'
                                 '"Teilnehmer/in 2","C D",cdee,c.d@uni.example,"abgegeben"\n'))
    assert sheet.header[sheet.email] == "E-Mail-Adresse"
    assert {n: p.student for n, p in sheet.participants.items()} == {"1": "a.b", "2": "c.d"}


def test_grades_go_to_the_worksheets_own_participants_and_the_rest_is_named(tmp_path):
    """write_grades itself, without a graded course: who gets which row, and the notes."""
    grades = [Grade("jane.doe", "12345", 6.0), Grade("jroe", "12346", 4.0),
              Grade("12346", "12346", 4.0),  # jroe, collected once without the worksheet
              Grade("mallory", "012345", 6.0),  # a planted lms_id.txt: Jane's number
              Grade("gone", "12360", 6.0), Grade("kim", "", 6.0), Grade("odd", "x12", 6.0),
              Grade("ann.poe", "12347", None, "1 point not graded yet"),
              Grade("12348", "12348", 6.0), Grade("012348", "012348", 5.0),  # two unverifiable claims: neither
              Grade("12349", "12349", 3.0)]  # listed without an address: the number alone names the row
    out = tmp_path / "out" / "tiny-moodle.csv"
    filled, notes = write_grades(read_worksheet(WORKSHEET), grades, 6.0, out)
    assert filled == [grades[0], grades[1], grades[10]]
    assert [r["Grade"] for r in read_sheet(out)] == ["100.00", "66.67", "", "", "50.00"]
    assert notes == [
        "grades scaled to Moodle's maximum grade 100 (the assignment's maximum: 6)",
        "one participant number, several students: participant 12346 (jroe, 12346: kept jroe), "
        "participant 12348 (12348, 012348: left blank)",
        "another student's participant number in this worksheet; left blank: mallory (participant 12345 is "
        "jane.doe there)",
        "not in the worksheet: gone (participant 12360)",
        "an LMS id that is not a participant number: odd",
        "no participant number (not collected from a Moodle download): kim",
        "left blank for your review: ann.poe (1 point not graded yet)",
    ]
