"""The LMS's side of the export: its roster (the gradebook export a course downloads) and the import file.

The roster is the LMS's gradebook export (``autograder/lms.py`` says each LMS's columns). Every
graded student must be found in it, by the LMS id of the download's names or by any of the LMS's
identity columns (Canvas: ``ID``, ``SIS Login ID``, ``SIS User ID``); the upload keeps the
roster's own assignment column (``W4 Optimization (123456)``) and refuses a roster without it.
Roster students without a submission are listed and get ``course_config.MISSING_SUBMISSION``;
the LMS's Test Student is skipped. ``export.py`` computes the final grades this module writes.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import course_config as cfg
from autograder.csvfiles import write_csv_atomically
from autograder.errors import InputError
from autograder.lms import LmsFormat, lms_format

if TYPE_CHECKING:
    from autograder.marking.export import FinalGrade


@dataclass
class Roster:
    """An LMS's gradebook export: its columns, its students in its order, and what is not a student."""
    path: Path
    columns: list[str]
    rows: list[dict[str, str]]  # the students, the LMS's test user included (``LmsFormat.is_test_student``)
    points: dict[str, str] | None = None  # the "points possible" row (Canvas)


def read_roster(path: Path, layout: LmsFormat | None = None) -> Roster:
    """The LMS's gradebook export (comma- or tab-separated, UTF-8 or Blackboard's UTF-16); ``ValueError``
    naming the file and the fix. Rows without any identity value (Canvas's "Points Possible" and
    posting rows) are not students."""
    layout = layout or lms_format()
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-16") if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); export the roster from "
                         "the LMS again, or save it as 'CSV UTF-8'") from None
    first = text.split("\n", 1)[0]
    table = list(csv.DictReader(io.StringIO(text), delimiter="\t" if first.count("\t") > first.count(",") else ","))
    columns = [c for c in (table[0].keys() if table else next(csv.reader([first]))) if c is not None]
    keys = [k.column for k in layout.keys if k.column in columns]
    if not keys:
        raise InputError(f"{path}: none of the columns that identify a student in {layout.label}'s gradebook export "
                         f"({', '.join(k.column for k in layout.keys)}); its columns: {', '.join(columns) or 'none'}. "
                         f"Give {layout.label}'s own export (course_config.LMS = {cfg.LMS!r})")
    points, rows = None, []
    for row in table:
        name = (row.get(layout.name) or "").strip()
        if layout.points_row and name == layout.points_row.strip():
            points = row
        elif any((row.get(k) or "").strip() for k in keys):
            rows.append({c: (row.get(c) or "") for c in columns})
    return Roster(Path(path), columns, rows, points)


def roster_column(roster: Roster, layout: LmsFormat) -> str:
    """The roster's own header of this assignment's column (``W4 Optimization (123456)``); ``ValueError``
    naming the columns the roster has when it has none, or several."""
    pattern = layout.roster_column()
    found = [c for c in roster.columns if pattern.fullmatch(c)]
    if len(found) == 1:
        return found[0]
    identity = set(layout.identity) | {k.column for k in layout.keys} | {layout.name}
    others = [c for c in roster.columns if c not in identity]
    if found:
        raise InputError(f"{roster.path}: {len(found)} columns are this assignment's: {', '.join(found)}; rename "
                         f"all but one in {layout.label}, or make course_config.LMS_ASSIGNMENT_COLUMN tell them apart")
    raise InputError(f"{roster.path}: no column {layout.score_shape.format(column=cfg.LMS_ASSIGNMENT_COLUMN)!r}"
                     f"; {layout.label} would create a new assignment for a column it does not "
                     f"know. Its columns: {', '.join(others) or 'none'}. Set course_config.LMS_ASSIGNMENT_COLUMN to "
                     "the assignment's name as the roster spells it (without the id), or export the roster again "
                     "after creating the assignment")


@dataclass
class LmsFile:
    """The LMS's import file, and what the export says about it."""
    header: list[str]
    rows: list[list[object]]
    missing: list[str] = field(default_factory=list)  # roster students without a submission
    skipped: list[str] = field(default_factory=list)  # the LMS's test users, left out
    warnings: list[str] = field(default_factory=list)


def match_roster(grades: list[FinalGrade], roster: Roster, layout: LmsFormat) -> dict[str, int]:
    """Student id -> roster row index. A download's student is found by the LMS id of its names in the
    LMS's column for it (Canvas ``ID``, Moodle ``Identifier``, Blackboard ``Username``); any other by every
    identity column the roster has. ``ValueError`` naming the students found nowhere, or in two rows."""
    index: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(roster.rows):
        for key in layout.keys:
            value = (row.get(key.column) or "").strip()
            if value:
                index.setdefault((key.column, value.casefold()), []).append(i)
    found, unknown, ambiguous = {}, [], []
    for g in grades:
        origin = g.origin or {}
        downloaded = origin.get("lms") == cfg.LMS and origin.get("lms_id")
        keys = layout.keys[:1] if downloaded else [*layout.keys[1:], layout.keys[0]]
        value = origin["lms_id"] if downloaded else g.student_id
        rows = {i for key in keys for i in index.get((key.column, key.cell(value).casefold()), [])}
        if len(rows) == 1:
            found[g.student_id] = rows.pop()
        elif rows:
            ambiguous.append(f"{g.student_id} (rows {', '.join(str(i + 2) for i in sorted(rows))})")
        else:
            unknown.append(g.student_id)
    if unknown or ambiguous:
        tried = ", ".join(k.column for k in layout.keys if k.column in roster.columns)
        raise InputError(f"{roster.path}: " + "; ".join(
            ([f"no row for {', '.join(unknown)} (looked in {tried})"] if unknown else [])
            + ([f"more than one row for {', '.join(ambiguous)}"] if ambiguous else []))
            + "; nothing was written. Export the roster again from the course's LMS, or grade the missing students' "
            "files under the ids the LMS knows them by")
    return found


def lms_file(grades: list[FinalGrade], *, roster: Path | None = None, unassigned: int = 0) -> LmsFile:
    """The rows of the LMS's import file (``course_config.LMS``): identity columns, then the score.

    Students with a flag get a blank score, which the LMS ignores, so nothing unfinished is posted. With
    a roster, its rows in its order: its identity columns, its assignment column's header, its test user
    left out, students without a submission given ``course_config.MISSING_SUBMISSION`` (a blank while
    ``unassigned`` files of the run could be theirs). Roster fields reach the file as text that a
    spreadsheet does not run as a formula (``autograder/csvfiles.py``); scores stay numbers.
    """
    layout = lms_format()
    if cfg.MISSING_SUBMISSION not in ("zero", "blank"):
        raise InputError(f"course_config.MISSING_SUBMISSION must be 'zero' or 'blank', not {cfg.MISSING_SUBMISSION!r}")
    max_score = grades[0].max_score if grades else float(sum(cfg.POINTS.values()))
    if roster is None:
        return without_roster(grades, layout, max_score)
    table = read_roster(roster, layout)
    column = roster_column(table, layout)
    matched = match_roster(grades, table, layout)
    by_row = {matched[g.student_id]: g for g in grades}
    result = LmsFile([], [])
    result.warnings += points_warnings(table, layout, column, max_score)
    if layout.copy_roster:
        result.header = list(table.columns)
    else:
        identity = set(layout.identity) | {k.column for k in layout.keys}
        result.header = [c for c in table.columns if c in identity] + [column]
        if layout.points_row is not None:
            result.rows.append([layout.points_row, *[""] * (len(result.header) - 2), max_score])
    missing_value: float | None = 0.0 if cfg.MISSING_SUBMISSION == "zero" and not unassigned else None
    if unassigned and cfg.MISSING_SUBMISSION == "zero":
        result.warnings.append(f"{unassigned} file(s) of this run could not be matched to a student (error: grader: in "
                               "grades.csv): students without a submission get a blank, not 0, until they are")
    for i, person in enumerate(table.rows):
        graded = by_row.get(i)
        label = f"{(person.get(layout.name) or '').strip()} ({(person.get(layout.key) or '').strip()})"
        if layout.is_test_student(person):
            result.skipped.append(label + (f", graded as {graded.student_id}" if graded else ""))
            continue
        if graded is None:
            result.missing.append(label)
            score = missing_value
        else:
            score = graded.score if graded.final else None
        if layout.copy_roster:
            result.rows.append([score if c == column else person.get(c, "") for c in result.header])
        else:
            result.rows.append([person.get(c, "") for c in result.header[:-1]] + [score])
    return result


def without_roster(grades: list[FinalGrade], layout: LmsFormat, max_score: float) -> LmsFile:
    """The import file from the student ids alone: the LMS's identity columns with our ids in its key column."""
    header = [*layout.identity, layout.score_column(), *layout.fixed]
    rows: list[list[object]] = []
    if layout.points_row is not None:
        rows.append([layout.points_row, *[""] * (len(layout.identity) - 1), max_score])
    for g in grades:
        lms_id = (g.origin or {}).get("lms_id") if (g.origin or {}).get("lms") == cfg.LMS else None
        key = layout.keys[0] if lms_id else layout.folder_key
        person = {layout.name: (g.origin or {}).get("name") or g.student_id, key.column: key.cell(lms_id or g.student_id)}
        rows.append([person.get(c, "") for c in layout.identity] + [g.score if g.final else None, *layout.fixed.values()])
    warning = (f"no --roster: the column {layout.score_column()!r} carries no {layout.label} assignment id, so "
               f"{layout.label} would create a new assignment on import, and rows match on {layout.key} only; "
               "give --roster (the LMS's gradebook export)") if not layout.copy_roster else \
        f"no --roster: rows match on {layout.key} only; give --roster (the LMS's worksheet)"
    return LmsFile(header, rows, warnings=[warning])


def points_warnings(table: Roster, layout: LmsFormat, column: str, max_score: float) -> list[str]:
    """Where the LMS's points for the assignment differ from this course's maximum."""
    stated = set()
    if table.points and (table.points.get(column) or "").strip():
        stated.add(table.points[column].strip())
    found = layout.roster_column().fullmatch(column)
    if found and "points" in found.groupdict() and found["points"]:
        stated.add(found["points"])
    if "Maximum Grade" in table.columns:
        stated |= {row["Maximum Grade"].strip() for row in table.rows if row.get("Maximum Grade", "").strip()}
    wrong = sorted(p for p in stated if _number(p) not in (None, max_score))
    return [f"{layout.label}'s {column!r} is worth {', '.join(wrong)} points, the grades here are out of "
            f"{max_score:g}: set the assignment's points in {layout.label} to {max_score:g} first"] if wrong else []


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def write_lms_csv(grades: list[FinalGrade], path: Path, *, roster: Path | None = None, unassigned: int = 0) -> Path:
    """Write the LMS's import file (``lms_file``) to ``path``."""
    found = lms_file(grades, roster=roster, unassigned=unassigned)
    write_csv_atomically(path, found.header, found.rows, quote_all=lms_format().quote_all)
    return path
