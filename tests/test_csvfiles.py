"""CSV cells are data: a formula from a roster or a student reaches no spreadsheet alive; numbers stay numbers."""
from __future__ import annotations

import csv
from datetime import datetime, timezone

import pytest

import course_config as cfg
from autograder.marking import export, manual
from autograder.csvfiles import format_points, from_spreadsheet, parse_points, spreadsheet_cell, write_csv_atomically
from autograder.errors import InputError
from autograder.late import Lateness
from autograder.lms import lms_format

pytestmark = pytest.mark.fast

# what a student can type as a display name in the LMS, which its gradebook export then carries
FORMULAS = ['=HYPERLINK("http://x","y")', "@SUM(1+1)", "+1+1", "-2+3", "\t=1+1", "\r=1+1"]


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("text", FORMULAS)
def test_text_that_starts_like_a_formula_is_quoted_and_read_back(text):
    assert spreadsheet_cell(text) == "'" + text
    assert from_spreadsheet(spreadsheet_cell(text)) == text


@pytest.mark.parametrize("value, written", [(-1, "-1"), (-1.0, "-1"), (1.5, "1.5"), (+1.5, "1.5"), (0.0, "0"),
                                            (None, ""), ("Ada Lovelace", "Ada Lovelace"), ("", ""),
                                            ("    Points Possible", "    Points Possible"), ("1+1", "1+1"),
                                            ("'quoted", "'quoted"), ("a\ud800\x00b", "a\ufffd\ufffdb")])
def test_numbers_stay_numbers_and_plain_text_is_unchanged(value, written):
    assert spreadsheet_cell(value) == written
    assert from_spreadsheet(written) == written


def test_a_hand_typed_quote_is_kept_when_it_protects_nothing():
    assert from_spreadsheet("'hello") == "'hello" and from_spreadsheet("'") == "'"


def final(student: str, score: float | None, flags: bool = False) -> export.FinalGrade:
    late = Lateness(datetime(2026, 10, 16, 20, tzinfo=timezone.utc), 0, 0.0,
                    "submission time unknown" if flags else None)
    return export.FinalGrade(student, score, 34.0, late)


def test_lms_file_from_a_roster_of_formulas(tmp_path):
    layout = lms_format(cfg.LMS)
    roster = tmp_path / "roster.csv"
    students = [f"s{i}" for i in range(len(FORMULAS))]
    column = f"{cfg.LMS_ASSIGNMENT_COLUMN} (4242)"  # Canvas's own header: the assignment's name and id
    with open(roster, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*layout.identity, column])
        for student, name in zip(students, FORMULAS):
            writer.writerow([name if c == layout.name else student if c == "SIS Login ID" else "-5" if c == "Section"
                             else "@123" for c in layout.identity] + [""])
    grades = [final(s, 20.5) for s in students]
    grades[0] = final(students[0], 12.0, flags=True)  # flagged: a blank score, not a number
    lms = read(export.write_lms_csv(grades, tmp_path / "lms.csv", roster=roster))
    header, points, rows = lms[0], lms[1], lms[2:]
    assert header == [*layout.identity, column]
    assert points[0] == layout.points_row and points[-1] == "34"  # Canvas' row, as Canvas spells it
    for row, name in zip(rows, FORMULAS):
        cells = dict(zip(header, row))
        assert cells[layout.name] == "'" + name, row  # the display name, inert
        assert cells["Section"] == "'-5" and cells["ID"] == "'@123"  # every roster field, not only the name
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row
    assert [row[-1] for row in rows] == ["", *["20.5"] * (len(FORMULAS) - 1)]  # scores are numbers


def test_nbgrader_csv_keeps_numbers_and_quotes_text(tmp_path):
    grades = [final("alice", -1.0), final("bob", 21.0, flags=True)]
    rows = {row[3]: row for row in read(export.write_nbgrader_csv(grades, tmp_path / "nb.csv"))[1:]}
    assert rows["alice"][export.NBGRADER_COLUMNS.index("raw_score")] == "-1"  # a number, even negative
    assert rows["bob"][-1] == "submission time unknown"


def test_manual_comments_that_start_like_formulas_survive_the_round_trip(tmp_path):
    _, manual_ids = manual.graded_cells()
    question = manual_ids[0]
    sheet = tmp_path / manual.SHEET_CSV
    comments = ["=1+1 is wrong", "-1 for the missing unit", "plain"]
    write_csv_atomically(sheet, manual.COLUMNS, [[f"s{i}", question, 1.0, 0.5, c] for i, c in enumerate(comments)])
    assert [row[-1] for row in read(sheet)[1:]] == ["'=1+1 is wrong", "'-1 for the missing unit", "plain"]
    entries = manual.parse_sheet(sheet, {f"s{i}" for i in range(len(comments))})
    assert [(points, comment) for _, _, points, comment in entries] == [(0.5, c) for c in comments]


def test_points_are_written_without_a_trailing_zero_and_read_back_or_refused():
    assert [format_points(v) for v in (None, 2.0, 1.5, 0.0)] == ["", "2", "1.5", "0"]
    assert parse_points(format_points(1.5), "grades.csv: row 2") == 1.5
    with pytest.raises(InputError, match=r"^grades.csv: row 2 holds 'lots', not a number; was the file edited by hand\?$"):
        parse_points("lots", "grades.csv: row 2")
