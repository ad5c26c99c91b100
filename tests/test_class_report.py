"""The class report (report.png, report.md) from a synthetic grades.csv: no kernel needed."""
from __future__ import annotations

import pytest

import course_config as cfg
from autograder.reports.class_report import write_class_report
from autograder.grading.grade import GradeRow, graded_cells, write_grades, zero_row

AUTO_IDS, MANUAL_IDS = graded_cells()
FULL = sum(cfg.POINTS[g] for g in AUTO_IDS)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def graded(student: str, passed: set[str]) -> GradeRow:
    cells = {g: (float(cfg.POINTS[g]) if g in passed else 0.0) for g in AUTO_IDS} | {g: None for g in MANUAL_IDS}
    return GradeRow(student, sum(v or 0.0 for v in cells.values()), FULL, cells, "graded")


@pytest.fixture
def grades_csv(tmp_path):
    """Three graded students (all, one cell, none) and one broken submission."""
    first = AUTO_IDS[0]
    rows = [graded("alice", set(AUTO_IDS)), graded("bob", {first}), graded("carol", set()),
            zero_row("dave", "dave.ipynb: not valid JSON (line 1, column 2: a|b)", AUTO_IDS, MANUAL_IDS)]
    path = tmp_path / "out" / "grades.csv"
    path.parent.mkdir()
    write_grades(rows, path, AUTO_IDS, MANUAL_IDS)
    return path


def table_row(md: str, grade_id: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith(f"| {grade_id} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_files_are_written_beside(grades_csv):
    png, md = write_class_report(grades_csv, grades_csv.parent)
    assert (png, md) == (grades_csv.parent / "report.png", grades_csv.parent / "report.md")
    assert png.read_bytes().startswith(PNG_SIGNATURE) and png.stat().st_size > 10_000


def test_pass_rates_count_only_graded_submissions(grades_csv):
    _, md = write_class_report(grades_csv, grades_csv.parent)
    text = md.read_text()
    first, last = AUTO_IDS[0], AUTO_IDS[-1]
    assert table_row(text, first) == [first, f"{cfg.POINTS[first]:g}", "67% (2/3)", f"{2 * cfg.POINTS[first] / 3:.2f}"]
    assert table_row(text, last) == [last, f"{cfg.POINTS[last]:g}", "33% (1/3)", f"{cfg.POINTS[last] / 3:.2f}"]
    assert "3 graded submissions, 1 not graded" in text
    assert not any(line.startswith(f"| {g} |") for g in MANUAL_IDS for line in text.splitlines())


def test_errors_are_listed_with_their_reason(grades_csv):
    _, md = write_class_report(grades_csv, grades_csv.parent)
    text = md.read_text()
    assert "## Errors: 1" in text
    assert r"| dave | dave.ipynb: not valid JSON (line 1, column 2: a\|b) |" in text  # '|' escaped for Markdown


def test_a_class_with_only_errors_still_gets_a_report(tmp_path):
    path = tmp_path / "grades.csv"
    write_grades([zero_row("eve", "eve.ipynb: not UTF-8 text", AUTO_IDS, MANUAL_IDS)], path, AUTO_IDS, MANUAL_IDS)
    png, md = write_class_report(path, tmp_path / "report")
    assert png.is_file() and "| n/a | n/a |" in md.read_text() and "0 graded submissions" in md.read_text()


def test_a_grades_csv_of_another_notebook_is_refused_by_name(tmp_path):
    path = tmp_path / "grades.csv"
    write_grades([graded("alice", set())], path, AUTO_IDS[1:], MANUAL_IDS)
    with pytest.raises(ValueError, match=f"grades.csv: no column {AUTO_IDS[0]}"):
        write_class_report(path, tmp_path)


def test_a_score_edited_into_text_is_refused_by_row_and_column(grades_csv):
    grades_csv.write_text(grades_csv.read_text().replace("alice,21", "alice,twenty-one", 1))
    with pytest.raises(ValueError, match="'alice', column 'autograded_score' holds 'twenty-one'"):
        write_class_report(grades_csv, grades_csv.parent)


def test_a_missing_grades_csv_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="no such file; grade into that folder first"):
        write_class_report(tmp_path / "grades.csv", tmp_path)


def test_a_row_cut_short_is_refused_by_student(grades_csv):
    lines = grades_csv.read_text().splitlines()
    lines[1] = ",".join(lines[1].split(",")[:5])
    grades_csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="the row of 'alice' has 5 values"):
        write_class_report(grades_csv, grades_csv.parent)
