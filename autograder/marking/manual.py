"""Grading the free-response answers without a browser: a sheet per question, a CSV back.

    python -m autograder manual-sheet RUN_DIR --out DIR    one HTML page per question, manual_grades.csv
    python -m autograder manual-import FILE.csv --run RUN_DIR

Each page shows the question, the rubric and every student's answer side by side. The CSV has
one line per answer to grade (student_id, question, max_points, points, comment), filled in with
what the gradebook already holds. The import checks every line first (a known student with a
submission, a free-response question, points from 0 to the maximum, no line twice) and writes
nothing unless all are right; each wrong line is named with its line number. A blank points cell
is skipped (not graded yet).
"""
from __future__ import annotations

import csv
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import nbformat
from markupsafe import Markup
from nbgrader.api import Gradebook, MissingEntry

import course_config as cfg
from autograder.errors import InputError
from autograder.csvfiles import from_spreadsheet, write_csv_atomically
from autograder.grading.gradebook import course_path, require_gradebook, rubrics
from autograder.pages import render, shown, write_page
from autograder.grading.results import graded_cells
from autograder.grading.submissions import read_notebook
from autograder.text import REPLACEMENT
from autograder.notebook_code import nbgrader_meta

SHEET_CSV = "manual_grades.csv"
COLUMNS = ["student_id", "question", "max_points", "points", "comment"]


class ManualImportError(InputError):
    """A grades file with wrong lines; the message lists each, and nothing was written."""


def gradebook_url(run: Path) -> str:
    return f"sqlite:///{require_gradebook(run).resolve()}"


def answers(run: Path, student_id: str, questions: Collection[str]) -> dict[str, str]:
    """Grade id of each of ``questions`` (the hand-graded cells, ``graded_cells()``) -> the student's answer,
    from the submitted notebook (text no file can hold shows as U+FFFD). Raises for a notebook that cannot
    be read (it was graded 0 with its reason)."""
    nb = read_notebook(course_path(Path(run), "submitted", student_id) / f"{cfg.NOTEBOOK_NAME}.ipynb")
    found = {}
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id", "")
        if isinstance(gid, str) and gid in questions and isinstance(cell.source, str):
            found.setdefault(gid, cell.source)
    return found


def answer_note(text: str) -> str:
    """What a grader should know about an answer as shown."""
    return (f"{REPLACEMENT} marks characters of the submission that no file can hold (replaced when it was graded)"
            if REPLACEMENT in text else "")


@dataclass
class Question:
    markdown: str
    attachments: dict  # the cell's attached figures (``attachment:NAME`` in its markdown)


def questions(release: Path = cfg.RELEASE_NOTEBOOK) -> dict[str, Question]:
    """Free-response grade id -> the question: the markdown cell just above the answer in the release."""
    _, manual_ids = graded_cells()
    cells = nbformat.read(release, as_version=4).cells
    found = {}
    for index, cell in enumerate(cells):
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in manual_ids:
            above = cells[index - 1] if index else {}
            found[gid] = Question(above.get("source", ""), dict(above.get("attachments", {})))
    return found


@dataclass
class Answer:
    student_id: str
    text: str
    points: float | None  # the manual score in the gradebook
    comment: str
    no_response: bool  # unchanged from the release: nbgrader scored it 0 itself
    note: str = ""  # for the grader: the notebook could not be read, characters were replaced


def collect(run: Path) -> dict[str, list[Answer]]:
    """Question -> every student's answer and current manual grade, from the gradebook and submitted/."""
    _, manual_ids = graded_cells()
    by_question: dict[str, list[Answer]] = {gid: [] for gid in manual_ids}
    with Gradebook(gradebook_url(run), cfg.COURSE_ID) as gb:
        for student in sorted(s.id for s in gb.students):
            try:
                notebook = gb.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, student)
            except MissingEntry:
                continue
            try:
                texts, unreadable = answers(run, student, manual_ids), ""
            except Exception as error:  # one student's notebook never stops the sheets of the others
                texts, unreadable = {}, f"the submitted notebook could not be read ({type(error).__name__}: {error})"[:300]
            grades = {g.name: g for g in notebook.grades}
            comments = {c.name: c for c in notebook.comments}
            for gid in manual_ids:
                grade, comment = grades[gid], comments.get(gid)
                no_response = comment is not None and comment.auto_comment == "No response."
                text = texts.get(gid, "")
                by_question[gid].append(Answer(student, text, grade.manual_score,
                                               (comment.manual_comment or "") if comment else "", no_response,
                                               unreadable or answer_note(text)))
    return by_question


def rendered(markdown: str, attachments: dict | None = None) -> Markup:
    """The instructor's Markdown (question, rubric) as HTML, cleaned as any page built from a notebook is
    (``autograder/sanitize.py``); math stays as written, and figures attached to the cell are embedded."""
    from autograder.sanitize import clean, render_markdown

    return Markup(clean(render_markdown(shown(markdown), attachments)))


def page(gid: str, question: str | Question, rubric: str, rows: list[Answer]) -> str:
    """One question's page: the question and the rubric rendered from their Markdown, then a row per student
    (``templates/manual_sheet.html.j2``: every student's text escaped, each in an element of its own)."""
    if isinstance(question, str):
        question = Question(question, {})
    return render("manual_sheet.html.j2", gid=gid, points=float(cfg.POINTS[gid]),
                  question=rendered(question.markdown, question.attachments), rubric=rendered(rubric), rows=rows)


def write_manual_sheet(run: Path, out: Path) -> tuple[list[Path], Path]:
    """One page per free-response question and the CSV to fill in; return (pages, csv)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    by_question, texts, prompts = collect(run), rubrics(), questions()
    pages = []
    lines = []
    for gid, rows in by_question.items():
        pages.append(write_page(out / f"{gid}.html", page(gid, prompts.get(gid, Question("", {})), texts.get(gid, ""), rows)))
        lines += [[a.student_id, gid, float(cfg.POINTS[gid]), a.points, a.comment] for a in rows if not a.no_response]
    sheet = out / SHEET_CSV
    write_csv_atomically(sheet, COLUMNS, lines)  # a comment that starts like a formula stays text
    return pages, sheet


def parse_sheet(path: Path, known: set[str]) -> list[tuple[str, str, float, str]]:
    """(student, question, points, comment) of each filled line; ``ManualImportError`` listing every bad line."""
    _, manual_ids = graded_cells()
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            table = list(csv.DictReader(f))
            header = table[0].keys() if table else []
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ManualImportError(f"{path}: cannot be read as CSV ({error})") from None
    missing = [c for c in ("student_id", "question", "points") if c not in header]
    if missing:
        raise ManualImportError(f"{path}: no column {', '.join(missing)} (expected {', '.join(COLUMNS)}; "
                                "write one with python -m autograder manual-sheet)")
    errors, entries, seen = [], [], {}
    for number, row in enumerate(table, start=2):  # line 1 is the header
        student, question = (row.get("student_id") or "").strip(), (row.get("question") or "").strip()
        raw = (row.get("points") or "").strip()
        where = f"{path}:{number}"
        if not raw:
            continue
        if student not in known:
            errors.append(f"{where}: unknown student {student!r} (no submission in the gradebook)")
            continue
        if question not in manual_ids:
            errors.append(f"{where}: {question!r} is not a free-response question ({', '.join(manual_ids)})")
            continue
        try:
            points = float(raw)
        except ValueError:
            errors.append(f"{where}: points {raw!r} is not a number")
            continue
        if not 0 <= points <= cfg.POINTS[question]:
            errors.append(f"{where}: {points:g} points for {question}, outside 0..{cfg.POINTS[question]:g}")
            continue
        if (student, question) in seen:
            errors.append(f"{where}: {student} / {question} again (first on line {seen[student, question]})")
            continue
        seen[student, question] = number
        entries.append((student, question, points, from_spreadsheet((row.get("comment") or "").strip())))
    if errors:
        raise ManualImportError(f"{len(errors)} wrong line(s), nothing was imported:\n" + "\n".join(errors))
    return entries


def import_manual_grades(path: Path, run: Path) -> int:
    """Load a filled ``manual_grades.csv`` into the run's gradebook, all lines or none; return the count."""
    with Gradebook(gradebook_url(run), cfg.COURSE_ID) as gb:
        known = set()
        for student in gb.students:
            try:
                gb.find_submission(cfg.ASSIGNMENT_ID, student.id)
                known.add(student.id)
            except MissingEntry:
                pass
        entries = parse_sheet(Path(path), known)
        try:
            for student, question, points, comment in entries:
                grade = gb.find_grade(question, cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, student)
                grade.manual_score, grade.needs_manual_grade = points, False
                if comment:
                    gb.find_comment(question, cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, student).manual_comment = comment
            gb.db.commit()
        except Exception:
            gb.db.rollback()
            raise
    return len(entries)
