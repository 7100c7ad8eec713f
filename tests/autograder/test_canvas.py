"""Canvas's gradebook export filled in by Canvas user id, for its grade import."""

import csv
import shutil

import pytest

from autograder import cli
from autograder.canvas import assignment_column, read_gradebook, write_gradebook
from autograder.export import canvas_file
from autograder.worksheet import Grade, WorksheetError
from tests.autograder.conftest import FIXTURES, collected, grade_written_answer, graded

GRADEBOOK = FIXTURES / "canvas_gradebook.csv"  # as Canvas exports it: a BOM, the points possible row


def read_rows(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.reader(f))


def test_the_assignments_column_is_found_by_name_or_named(tmp_path):
    gradebook = read_gradebook(GRADEBOOK)
    assert assignment_column(gradebook, "tiny") == "Tiny exercise (8812)"
    assert assignment_column(gradebook, "tiny", "RNNs (8813)") == "RNNs (8813)"
    with pytest.raises(WorksheetError, match=r"which column of canvas_gradebook.csv is 'softmax'\? none does "
                                             r"\(assignment columns: Tiny exercise \(8812\), RNNs \(8813\)\)"):
        assignment_column(gradebook, "softmax")
    with pytest.raises(WorksheetError, match="has no column 'Tiny'"):
        assignment_column(gradebook, "tiny", "Tiny")
    two = tmp_path / "two.csv"
    two.write_text("Student,ID,Section,Tiny exercise (1),Tiny bonus (2),HW1 (3),HW10 (4),Film review (5)\nA,1,S,,\n")
    with pytest.raises(WorksheetError, match=r"several do \(Tiny exercise \(1\), Tiny bonus \(2\)\): name it with "
                                             "--canvas-column"):
        assignment_column(read_gradebook(two), "tiny")
    assert assignment_column(read_gradebook(two), "hw1") == "HW1 (3)"  # the same name before one containing it
    with pytest.raises(WorksheetError, match="none does"):
        assignment_column(read_gradebook(two), "lm")  # letters inside a word are not its name
    with pytest.raises(WorksheetError, match="not a Canvas gradebook export"):
        read_gradebook(FIXTURES / "moodle_worksheet.csv")
    no_section = tmp_path / "no_section.csv"
    no_section.write_text("Student,ID,Tiny exercise (1)\nA,1,\n")
    with pytest.raises(WorksheetError, match="no Section column, which Canvas's import needs"):
        read_gradebook(no_section)


def test_grades_go_back_by_canvas_user_id(course):
    for student, canvas_id, score in (("doejane", "1234", 2.0), ("roejohn", "1235", 0.0), ("poeann", "1236", 2.0),
                                      ("mallory", "01234", 2.0),  # a planted lms_id.txt: Jane's id
                                      ("trudy", "1299", 2.0),  # the id of someone who did not submit
                                      ("kim", "", 2.0), ("gone", "1400", 2.0)):
        graded(course, student, score)
        if canvas_id:
            collected(course, student, canvas_id)
    for student in ("doejane", "roejohn", "mallory", "trudy", "kim", "gone"):
        grade_written_answer(course, student, 1.0)  # poeann's written answer is not graded yet
    files = canvas_file(course, "tiny", read_gradebook(GRADEBOOK))

    assert files.grades == course.exports / "tiny-canvas.csv" and files.filled == 2
    assert read_rows(files.grades) == [  # only the columns Canvas matches students by, and this assignment's
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Tiny exercise (8812)"],
        ["    Points Possible", "", "", "", "", "10.00"],
        ["Doe, Jane", "1234", "s001", "jdoe", "DL 2026", "10.00"],  # 6 of 6 points
        ["Roe, John", "1235", "s002", "jroe", "DL 2026", "6.67"],  # 4 of 6
        ["Poe, Ann", "1236", "s003", "apoe", "DL 2026", ""],
        ["Student, Test", "1299", "", "", "DL 2026", ""],
    ]
    assert files.notes == [
        "the assignment's column: Tiny exercise (8812)",
        "grades scaled to Canvas's 10 points possible (the assignment's maximum: 6)",
        "another student's Canvas id, or a name Canvas does not give it; left blank: mallory (id 1234 is "
        "'Doe, Jane'), trudy (id 1299 is 'Student, Test')",
        "not in the gradebook: gone (1400)",
        "no Canvas user id (not collected from a Canvas download): kim",
        "left blank for your review: poeann (1 point not graded yet)",
        "replaced a grade already in the gradebook: roejohn (was 4.00)",
    ]


def test_exports_saved_with_semicolons_and_students_in_two_sections(course, tmp_path):
    """A spreadsheet in a decimal-comma language saves semicolons; a student in two sections has
    two rows; Canvas drops accents from the names in its file names."""
    gradebook = tmp_path / "grades.csv"
    gradebook.write_text("Student;ID;SIS User ID;SIS Login ID;Section;Tiny exercise (8812)\n"
                         "    Points Possible;;;;;10,00\n"
                         "Groß, Jörg;77;;;Lecture;\nGroß, Jörg;77;;;Lab;\n", encoding="utf-8")
    graded(course, "grojrg", 2.0)
    collected(course, "grojrg", "77")
    grade_written_answer(course, "grojrg", 1.0)
    files = canvas_file(course, "tiny", read_gradebook(gradebook))
    assert files.grades.read_text(encoding="utf-8").splitlines() == [
        "Student;ID;SIS User ID;SIS Login ID;Section;Tiny exercise (8812)", "    Points Possible;;;;;10,00",
        "Groß, Jörg;77;;;Lecture;10,00", "Groß, Jörg;77;;;Lab;10,00"]
    assert files.filled == 1


def test_the_export_command_writes_the_canvas_file(course, tmp_path, capsys):
    graded(course, "doejane", 2.0)
    collected(course, "doejane", "1234")
    grade_written_answer(course, "doejane", 1.0)
    gradebook = shutil.copyfile(GRADEBOOK, tmp_path / "grades.csv")
    root = ["--course", str(course.root), "export", "tiny"]
    assert cli.main([*root, "--canvas-gradebook", str(gradebook)]) == 0
    out = capsys.readouterr().out
    assert f"Canvas gradebook: {course.exports / 'tiny-canvas.csv'} (1 grade filled in; upload it with " in out
    assert cli.main([*root, "--canvas-gradebook", str(gradebook), "--canvas-column", "Tiny"]) == 2
    assert "has no column 'Tiny'" in capsys.readouterr().err
    assert cli.main([*root, "--canvas-column", "Tiny exercise (8812)"]) == 2
    assert "--canvas-column names a column of the file given with --canvas-gradebook" in capsys.readouterr().err


def test_a_gradebook_without_points_possible_or_identity_columns_is_refused(tmp_path):
    """Grades are scaled to the column's points possible: without a positive one nothing is written."""
    def gradebook(text):
        path = tmp_path / "grades.csv"
        path.write_text(text, encoding="utf-8")
        return read_gradebook(path)

    jane = [Grade("doejane", "1234", 4.0)]
    out = tmp_path / "out.csv"
    for points_row in ("", "    Points Possible,,,0.00\n", "    Points Possible,,\n", "    Points Possible,,,n/a\n"):
        book = gradebook("Student,ID,Section,Tiny (1)\n" + points_row + '"Doe, Jane",1234,S,\n')
        with pytest.raises(WorksheetError, match=r"no points possible for 'Tiny \(1\)'"):
            write_gradebook(book, "Tiny (1)", jane, 6.0, out)
    book = gradebook('Student,ID,Section,Tiny (1)\n    Points Possible,,,10\n"Doe, Jane",1234,S,\n')
    with pytest.raises(WorksheetError, match="no points possible"):
        write_gradebook(book, "Tiny (1)", jane, 0.0, out)  # an assignment without points
    assert not out.exists()
    filled, _ = write_gradebook(book, "Tiny (1)", jane, 6.0, out)  # points possible without decimals
    assert filled == jane and read_rows(out)[2] == ["Doe, Jane", "1234", "S", "6.67"]
    one = gradebook('Student,ID,Section,Tiny (1)\n    Points Possible,,,1\n"Doe, Jane",1234,S,\n')
    write_gradebook(one, "Tiny (1)", [Grade("doejane", "1234", 0.5)], 1.0, out)  # the smallest bounds accepted
    assert read_rows(out)[2] == ["Doe, Jane", "1234", "S", "0.50"]
    short = gradebook('Student,ID,Section,Tiny (1)\n    Points Possible,,,10\n"Only, Name"\n"Doe, Jane",1234\n')
    filled, _ = write_gradebook(short, "Tiny (1)", jane, 6.0, out)  # rows a spreadsheet saved without their empty cells
    assert filled == jane and read_rows(out)[2:] == [["Only, Name", "", "", ""], ["Doe, Jane", "1234", "", "6.67"]]
    for header in ("Name,ID,Section,Tiny (1)", "Student,Canvas ID,Section,Tiny (1)"):
        with pytest.raises(WorksheetError, match="not a Canvas gradebook export"):
            gradebook(header + "\nA,1,S,\n")


def test_extra_credit_is_noted_and_only_the_points_possible_row_gives_the_points(tmp_path):
    path = tmp_path / "grades.csv"
    path.write_text('Student,ID,Section,Tiny (1)\n    Points Possible,,,10\n"Doe, Jane",1234,S,\n', encoding="utf-8")
    out = tmp_path / "out.csv"
    filled, notes = write_gradebook(read_gradebook(path), "Tiny (1)", [Grade("doejane", "1234", 6.5)], 6.0, out)
    assert read_rows(out)[2] == ["Doe, Jane", "1234", "S", "10.83"]
    assert notes == ["the assignment's column: Tiny (1)",
                     "grades scaled to Canvas's 10 points possible (the assignment's maximum: 6)",
                     "above the points possible, which Canvas accepts as extra credit: doejane"]
    path.write_text('Student,ID,Section,Tiny (1)\n"Doe, Jane",1234,S,4.00\n', encoding="utf-8")  # no points row
    with pytest.raises(WorksheetError, match=r"no points possible for 'Tiny \(1\)'"):
        write_gradebook(read_gradebook(path), "Tiny (1)", [Grade("doejane", "1234", 6.0)], 6.0, out)
