"""The class's nbgrader course: one gradebook for every student, laid out for the formgrader.

``grade --out OUT`` makes ``OUT`` an nbgrader course folder:

- ``OUT/gradebook.db``: nbgrader's gradebook with every student's autograded submission (scores,
  comments, submission time); manual scores and comments go in here too, from the formgrader
  or ``manual-import``;
- ``OUT/source/<assignment>/``, ``OUT/submitted/<student>/<assignment>/`` (with nbgrader's
  ``timestamp.txt`` and, from an LMS download, ``lms.json``: the name in the zip, the LMS's ids and
  late marker) and ``OUT/autograded/<student>/<assignment>/``: what the formgrader shows.
  The autograded copy is sanitized (``autograder/sanitize.py``: no script, handler or
  ``javascript:`` URL of the student's survives in it) and carries a grader-only cell with the
  rubric after each free-response answer; ``StripGraderOnly`` removes it from any feedback;
- ``OUT/nbgrader_config.py``: this course's settings, so ``nbgrader formgrader`` (or any
  nbgrader command) run in ``OUT`` finds the gradebook.

Each student's records are written by ``record()``; regrading a student rewrites only that
student's autograded fields. Manual scores and comments are never the autograder's to change:
they are kept, and flagged for review when the student's notebook itself changed. A grader
fault reaches the gradebook as a flagged submission with no autograded score, never as a score.
"""
from __future__ import annotations

import contextlib
import json
import logging
import shutil
import warnings
from datetime import timezone
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

import course_config as cfg
from autograder.errors import InputError
from autograder.late import TIMESTAMP_FILE, due_date, parse_time
from autograder.grading.results import GradeRow, WorkerResult, graded_cells
from autograder.sanitize import sanitize_notebook
from autograder.grading.submissions import ORIGIN_FILE
from autograder.text import storable
from autograder.notebook_code import nbgrader_meta

log = logging.getLogger(__name__)

GRADEBOOK = "gradebook.db"
FINAL_FEEDBACK = "final_feedback"  # in a class course: each student's final feedback page (``feedback DIR``)
GRADER_ONLY = "w4_grader_only"  # metadata key of the rubric cells that graders see and students never do
FINGERPRINT = ".course/gradebook.fingerprint"  # the grader version the gradebook's cells come from
BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"  # nbgrader's solution delimiters (ClearSolutions' defaults)

CONFIG_TEMPLATE = '''\
# nbgrader's settings for this class gradebook, written by `python -m autograder grade`.
# Run `nbgrader formgrader` (or any nbgrader command) in this folder.
import sys
from pathlib import Path

sys.path.insert(0, {root!r})
from autograder.settings import nbgrader_config  # noqa: E402

c = get_config()  # noqa: F821 - injected by traitlets
c.merge(nbgrader_config(Path(__file__).resolve().parent))
'''


def require_gradebook(run: Path, *, config: bool = False) -> Path:
    """The class gradebook of the run folder ``run`` (and, with ``config``, its ``nbgrader_config.py``, which
    nbgrader's own commands need); ``InputError`` saying how to make it when there is none."""
    run = Path(run)
    db = run / GRADEBOOK
    if config and not (db.is_file() and (run / "nbgrader_config.py").is_file()):
        raise InputError(f"{run}: no class gradebook or nbgrader_config.py; grade into it first "
                         f"(python -m autograder grade SUBMISSIONS --out {run})")
    if not db.is_file():
        raise InputError(f"{db}: no class gradebook; grade into {run} first (python -m autograder grade ... --out {run})")
    return db


def submission_records(db_url: str, student_id: str) -> dict:
    """What nbgrader's autograde stored for a student (the worker's scratch gradebook), as JSON:
    ``{"grades": {grade id: {"auto_score", "needs_manual_grade"}}, "comments": {grade id: auto_comment}}``."""
    with Gradebook(db_url, cfg.COURSE_ID) as gb:
        notebook = gb.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, student_id)
        return {"grades": {g.name: {"auto_score": g.auto_score, "needs_manual_grade": bool(g.needs_manual_grade)}
                           for g in notebook.grades},
                "comments": {c.name: c.auto_comment for c in notebook.comments}}


def rubrics(source_notebook: Path = cfg.SOURCE_NOTEBOOK) -> dict[str, str]:
    """Free-response grade id -> its model answer and rubric: the solution region of the source cell."""
    _, manual_ids = graded_cells(source_notebook)
    found = {}
    for cell in nbformat.read(source_notebook, as_version=4).cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in manual_ids:
            lines = cell.source.splitlines()
            begin = next((i for i, line in enumerate(lines) if BEGIN in line), None)
            end = next((i for i, line in enumerate(lines) if END in line), len(lines))
            found[gid] = "\n".join(lines[begin + 1:end] if begin is not None else lines).strip()
    return found


def with_rubrics(nb: nbformat.NotebookNode, texts: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of ``nb`` with a grader-only markdown cell holding the rubric after each free-response answer."""
    copy = nbformat.from_dict(nb)
    cells = []
    for cell in copy.cells:
        if cell.metadata.get(GRADER_ONLY):
            continue  # an older rubric cell (or a student's forgery): replaced below
        cells.append(cell)
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in texts:
            rubric = nbformat.v4.new_markdown_cell(
                f"**For graders only: model answer and rubric of `{gid}`** (not shown to students)\n\n{texts[gid]}")
            rubric.metadata[GRADER_ONLY] = True
            cells.append(rubric)
    copy.cells = cells
    return copy


@contextlib.contextmanager
def class_gradebook(db_url: str):
    """nbgrader's ``Gradebook``, without the SQLAlchemy warnings its ``add_submission`` raises on
    every new student (it builds the rows before adding them to the session; the rows are right)."""
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        with Gradebook(db_url, cfg.COURSE_ID) as gb:
            yield gb


def course_path(root: Path, kind: str, student_id: str) -> Path:
    """``root/<kind>/<student>/<assignment>``: nbgrader's layout of submitted/ and autograded/."""
    return root / kind / student_id / cfg.ASSIGNMENT_ID


class ClassGradebook:
    """``out`` as the class's nbgrader course; ``template`` is a course whose gradebook holds the
    assignment's cells and nothing else (``generate_assignment``'s output)."""

    def __init__(self, out: Path, template: Path, fingerprint: str):
        self.root = Path(out).resolve()
        self.template = Path(template)
        self.db_url = f"sqlite:///{self.root / GRADEBOOK}"
        self.fingerprint = fingerprint
        self.auto_ids, self.manual_ids = graded_cells()
        self._rubrics = rubrics()

    def prepare(self) -> None:
        """Write the course's config and source; create the gradebook, or renew its cells when the
        tests changed (keeping every student's manual scores and comments)."""
        (self.root / "nbgrader_config.py").write_text(CONFIG_TEMPLATE.format(root=str(cfg.ROOT)))
        (self.root / ".exchange").mkdir(exist_ok=True)  # nbgrader_config's Exchange.root; the formgrader wants it
        stamp = self.root / FINGERPRINT
        stamp.parent.mkdir(parents=True, exist_ok=True)
        db = self.root / GRADEBOOK
        current = stamp.read_text().strip() if stamp.is_file() else None
        if db.is_file() and current == self.fingerprint:
            return
        source = self.root / "source" / cfg.ASSIGNMENT_ID
        if source.exists():
            shutil.rmtree(source)
        shutil.copytree(self.template / "source" / cfg.ASSIGNMENT_ID, source)
        if db.is_file():
            self._renew(db)
        else:
            shutil.copyfile(self.template / GRADEBOOK, db)
        with Gradebook(self.db_url, cfg.COURSE_ID) as gb:
            gb.update_or_create_assignment(cfg.ASSIGNMENT_ID,
                                           duedate=due_date().astimezone(timezone.utc).replace(tzinfo=None))
        stamp.write_text(self.fingerprint)

    def _renew(self, db: Path) -> None:
        """New cells from the template; each student's submission and manual grading carried over."""
        old = db.with_name(GRADEBOOK + ".old")
        db.replace(old)
        shutil.copyfile(self.template / GRADEBOOK, db)
        with class_gradebook(f"sqlite:///{old}") as src, class_gradebook(self.db_url) as dst:
            graded_by_hand = 0
            for student in [s.id for s in src.students]:
                graded_by_hand += has_manual_grades(src, student)
                copy_submission(src, dst, student)
        old.unlink()
        log.warning("the tests changed: the class gradebook's cells were renewed; manual grades of %d student(s) "
                    "kept", graded_by_hand)

    def record(self, row: GradeRow, submission_path: Path | None, submitted_at: str | None,
               autograded: Path | None, records: dict | None, *, origin: dict | None = None) -> None:
        """Write one student's autograded result into the gradebook and the course folders.

        ``records``: the worker's ``submission_records`` (None for an error or a grader fault);
        ``autograded``: the autograded notebook, if there is one; ``origin``: what the LMS's download said
        of it (``lms.json``, kept beside the submission; its name becomes the student's in the gradebook).
        """
        sid = row.student_id
        submitted = course_path(self.root, "submitted", sid)
        changed = self._store_submission(submitted, submission_path, submitted_at, origin)
        graded_dir = course_path(self.root, "autograded", sid)
        copy = graded_dir / f"{cfg.NOTEBOOK_NAME}.ipynb"
        has_notebook = autograded is not None and autograded.is_file()
        current = (has_notebook and not changed and copy.is_file()  # a stored result recorded again
                   and copy.stat().st_mtime_ns >= autograded.stat().st_mtime_ns)
        if not current:
            if graded_dir.exists():
                shutil.rmtree(graded_dir)
            if has_notebook:
                graded_dir.mkdir(parents=True)
                nb = nbformat.read(autograded, as_version=4)
                removed = sanitize_notebook(nb)  # graders open this copy in a logged-in browser
                if removed:
                    log.warning("%s: content a browser would run, removed from the graders' copy (each cell says "
                                "what): %s", sid, "; ".join(f"cell {i}: {', '.join(r)}" for i, r in removed.items()))
                nbformat.write(with_rubrics(nb, self._rubrics), copy)
        when = None
        if submitted_at:
            try:
                when = parse_time(submitted_at).astimezone(timezone.utc).replace(tzinfo=None)
            except ValueError:
                pass  # the export reports it (autograder/marking/export.py reads timestamp.txt again)
        with class_gradebook(self.db_url) as gb:
            name = (origin or {}).get("name")
            gb.update_or_create_student(sid, **({"last_name": storable(str(name))} if name else {}))
            gb.update_or_create_submission(cfg.ASSIGNMENT_ID, sid)
            submission = gb.find_submission(cfg.ASSIGNMENT_ID, sid)
            submission.timestamp = when
            notebook = gb.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, sid)
            notebook.flagged = row.grader_fault
            for grade in notebook.grades:
                self._set_grade(grade, row, records, changed)
            comments = (records or {}).get("comments", {})
            for comment in notebook.comments:
                comment.auto_comment = comments.get(comment.name)
            gb.db.commit()

    def _set_grade(self, grade, row: GradeRow, records: dict | None, changed: bool) -> None:
        manual_cell = grade.name in self.manual_ids
        if row.grader_fault:  # no score where none was earned; a human looks at it
            if not manual_cell:
                grade.auto_score, grade.needs_manual_grade = None, True
            return
        if row.status != "graded":  # the submission's own error: 0 points, nothing to grade by hand
            grade.auto_score, grade.needs_manual_grade = 0.0, False
            return
        if manual_cell:  # nbgrader's own verdict: None (answered: a grader's turn) or 0 (left as released)
            grade.auto_score = ((records or {}).get("grades", {}).get(grade.name) or {}).get("auto_score")
        else:  # the row's score: nbgrader's, from the judge's verdict
            grade.auto_score = row.cells.get(grade.name) or 0.0
        graded_by_hand = grade.manual_score is not None
        # nbgrader's rule (SaveAutoGrades), except that a manual score of an unchanged answer stays final
        grade.needs_manual_grade = (grade.auto_score is None and not graded_by_hand) or (graded_by_hand and changed)

    def _store_submission(self, folder: Path, submission_path: Path | None, submitted_at: str | None,
                          origin: dict | None = None) -> bool:
        """Copy the student's notebook, time and LMS fields into ``submitted/``; True when the notebook changed."""
        target = folder / f"{cfg.NOTEBOOK_NAME}.ipynb"
        new = Path(submission_path).read_bytes() if submission_path and Path(submission_path).is_file() else b""
        old = target.read_bytes() if target.is_file() else None
        changed = old is not None and old != new
        if old != new:
            folder.mkdir(parents=True, exist_ok=True)
            target.write_bytes(new)
        stamp = folder / TIMESTAMP_FILE
        if submitted_at:
            stamp.write_text(submitted_at)
        else:
            stamp.unlink(missing_ok=True)
        lms = folder / ORIGIN_FILE
        if origin:
            folder.mkdir(parents=True, exist_ok=True)
            lms.write_text(json.dumps(origin, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        else:
            lms.unlink(missing_ok=True)
        return changed


def has_manual_grades(gb: Gradebook, student_id: str) -> bool:
    """Whether a grader gave the student any manual score, extra credit or comment."""
    try:
        notebook = gb.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, student_id)
    except MissingEntry:
        return False
    return (any(g.manual_score is not None or g.extra_credit for g in notebook.grades)
            or any(c.manual_comment for c in notebook.comments))


def class_students(root: Path) -> set[str]:
    """Every student a class course in ``root`` holds: in its gradebook or in its ``submitted/`` folder."""
    root = Path(root)
    found = {p.name for p in (root / "submitted").iterdir() if p.is_dir()} if (root / "submitted").is_dir() else set()
    if (root / GRADEBOOK).is_file():
        with class_gradebook(f"sqlite:///{(root / GRADEBOOK).resolve()}") as gb:
            found |= {s.id for s in gb.students}
    return found


def remove_students(root: Path, students: list[str]) -> None:
    """Remove ``students`` from the class course in ``root``: their gradebook records (manual grades
    included), their ``submitted/`` and ``autograded/`` folders, feedback pages and stored results."""
    root = Path(root)
    if (root / GRADEBOOK).is_file():
        with class_gradebook(f"sqlite:///{(root / GRADEBOOK).resolve()}") as gb:
            for sid in students:
                try:
                    gb.remove_student(sid)
                except MissingEntry:
                    pass
    for sid in students:
        for kind in ("submitted", "autograded"):
            shutil.rmtree(root / kind / sid, ignore_errors=True)
        for path in (root / "feedback" / f"{sid}.html", root / FINAL_FEEDBACK / f"{sid}.html",
                     root / ".course" / "results" / f"{sid}.json", root / ".course" / "results" / f"{sid}.log",
                     root / ".course" / "autograded" / f"{sid}.ipynb", root / ".course" / "repaired" / f"{sid}.ipynb"):
            path.unlink(missing_ok=True)


def copy_submission(src: Gradebook, dst: Gradebook, student_id: str) -> None:
    """Copy a student's submission, grades and comments from ``src`` to ``dst`` (cells that ``dst``
    lacks are skipped); ``dst``'s existing records of that student are replaced."""
    try:
        old = src.find_submission(cfg.ASSIGNMENT_ID, student_id)
        old_nb = src.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, student_id)
    except MissingEntry:
        return
    dst.update_or_create_student(student_id)
    try:
        dst.remove_submission(cfg.ASSIGNMENT_ID, student_id)
    except MissingEntry:
        pass
    new = dst.add_submission(cfg.ASSIGNMENT_ID, student_id)
    new.timestamp, new.extension = old.timestamp, old.extension
    new_nb = dst.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, student_id)
    new_nb.flagged, new_nb.late_submission_penalty = old_nb.flagged, old_nb.late_submission_penalty
    grades = {g.name: g for g in old_nb.grades}
    for grade in new_nb.grades:
        if grade.name in grades:
            g = grades[grade.name]
            grade.auto_score, grade.manual_score, grade.extra_credit = g.auto_score, g.manual_score, g.extra_credit
            grade.needs_manual_grade = g.needs_manual_grade
    comments = {c.name: c for c in old_nb.comments}
    for comment in new_nb.comments:
        if comment.name in comments:
            comment.auto_comment, comment.manual_comment = comments[comment.name].auto_comment, comments[comment.name].manual_comment
    dst.db.commit()


def merge_gradebooks(shards: list[Path], dest: Path, template: Path, fingerprint: str) -> ClassGradebook:
    """One class gradebook in ``dest`` from the shards' (their students' records and course folders)."""
    book = ClassGradebook(dest, template, fingerprint)
    book.prepare()
    for shard in shards:
        if not (shard / GRADEBOOK).is_file():
            raise InputError(f"{shard / GRADEBOOK}: no gradebook; grade that shard again with this version")
        with class_gradebook(f"sqlite:///{(shard / GRADEBOOK).resolve()}") as src, class_gradebook(book.db_url) as dst:
            for student in [s.id for s in src.students]:
                copy_submission(src, dst, student)
                for kind in ("submitted", "autograded"):
                    folder = course_path(shard, kind, student)
                    target = course_path(book.root, kind, student)
                    if target.exists():
                        shutil.rmtree(target)
                    if folder.is_dir():
                        shutil.copytree(folder, target)
    return book


def stored_records(results: Path, student_id: str) -> dict | None:
    """The worker's gradebook records kept in ``results/<student>.json`` (None if absent)."""
    try:
        return WorkerResult.read(results / f"{student_id}.json").gradebook
    except (OSError, ValueError, TypeError):
        return None
