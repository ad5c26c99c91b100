"""Find the submissions in a folder and check that each is a notebook of this assignment.

Three inputs are accepted: nbgrader's ``submitted/`` tree
(``<student>/<assignment>/<notebook>.ipynb``), a flat folder of ``<student>.ipynb`` files, and
a .zip of notebooks as a learning-management system exports it, whose file names carry the
student id (nbgrader's ``zip_collect`` conventions, ``course_config.ZIP_FILENAME_REGEXP``).
A file that is not a readable notebook of this assignment is not an exception: it becomes a
submission with a ``problem`` that the grader records as a zero with that reason.

Student ids come from file names (folder names in a ``submitted/`` tree): a name made of letters,
digits, ``.``, ``_`` and ``-`` (starting with a letter or digit, at most 64) is the id; any other
name is cleaned by ``safe_student_id`` and graded 0 with the reason. Two files whose ids are equal,
or differ only in case, are the run's input error (``SubmissionsError`` naming every such file):
one student's file is never graded over another's.

Text that no file can hold (a lone surrogate such as ``"\\ud800"``, valid in JSON; a NUL) is
replaced by U+FFFD in a repaired copy of the notebook, which is graded instead (``autograder/text.py``).
"""
from __future__ import annotations

import atexit
import json
import logging
import re
import shutil
import tempfile
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import nbformat

import course_config as cfg
from autograder.late import TIMESTAMP_FILE
from autograder.text import repaired_json, storable

log = logging.getLogger(__name__)

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SubmissionsError(ValueError):
    """The submissions folder itself cannot be used (missing, empty, mixed layouts)."""


@dataclass(frozen=True)
class Submission:
    student_id: str
    path: Path
    problem: str | None = None  # why it cannot be graded; None when it can
    submitted_at: str | None = None  # as written in timestamp.txt (autograder/late.py reads it)
    repaired: int = 0  # characters no file can hold (lone surrogates, NUL) replaced by U+FFFD in ``path``


def expected_grade_ids(source_notebook: Path = cfg.SOURCE_NOTEBOOK) -> set[str]:
    """Grade ids of the graded cells of the source notebook."""
    nb = nbformat.read(source_notebook, as_version=4)
    return {cell.metadata["nbgrader"]["grade_id"] for cell in nb.cells
            if cell.metadata.get("nbgrader", {}).get("grade")}


def notebook_problem(path: Path, expected_ids: set[str]) -> str | None:
    """Why ``path`` cannot be graded as this assignment's notebook, or None if it can."""
    size = path.stat().st_size if path.exists() else 0
    if size > cfg.MAX_SUBMISSION_MB * 10**6:
        return (f"{path.name}: {size / 10**6:.0f} MB, over the {cfg.MAX_SUBMISSION_MB} MB limit "
                "(clear the outputs before submitting)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        return f"{path.name}: not UTF-8 text ({error.reason} at byte {error.start})"
    except OSError as error:
        return f"{path.name}: cannot be read ({error.strerror})"
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        return f"{path.name}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as error:  # nbformat raises several types for a JSON that is no notebook
        return f"{path.name}: not a Jupyter notebook ({type(error).__name__}: {str(error).splitlines()[0]})"
    ids = [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in nb.cells
           if cell.metadata.get("nbgrader", {}).get("grade")]
    duplicated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicated:
        return f"{path.name}: graded cells appear more than once: {', '.join(duplicated)}"
    present = set(ids) & expected_ids
    if not present:
        return f"{path.name}: no graded cell of {cfg.ASSIGNMENT_ID} (another assignment's notebook?)"
    return None


def safe_student_id(raw: str) -> str:
    """A usable id made from ``raw`` (for the row of a file whose name is not one): every character
    other than an ASCII letter, digit, ``.``, ``_`` or ``-`` becomes ``_``, then leading and trailing
    ``.``, ``_`` and ``-`` go, and the first 64 characters are kept (``unnamed`` if none is left)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw).strip("._-")[:64] or "unnamed"


def repair_notebook(path: Path, destination: Path) -> int:
    """Write ``path`` to ``destination`` with every lone surrogate and NUL in its strings replaced by
    U+FFFD, if it holds any; return how many were replaced (0: nothing written). A file that is not
    UTF-8 JSON is left to ``notebook_problem``."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return 0
    fixed, count = repaired_json(data)
    if count:
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(json.dumps(fixed, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return count


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """A submitted notebook as version 4, with text no file can hold replaced by U+FFFD: how every
    report reads a student's answers (the submitted copy of an unreadable notebook is not repaired).
    Raises ``OSError``, ``ValueError`` (not UTF-8 JSON) or nbformat's errors for what is no notebook."""
    text = Path(path).read_bytes().decode("utf-8")
    fixed, count = repaired_json(json.loads(text))
    return nbformat.reads(json.dumps(fixed) if count else text, as_version=4)


_scratch: Path | None = None


def scratch_folder() -> Path:
    """A private folder for repaired notebooks when the caller gives none, removed when the process ends."""
    global _scratch
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="w4-repaired-"))
        atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
    return _scratch


def checked_submission(student_id: str, path: Path, expected_ids: set[str], repaired_dir: Path | None = None,
                       *, problem: str | None = None, submitted_at: str | None = None) -> Submission:
    """A submission of ``path`` checked for problems (unless ``problem`` is given); a notebook that holds
    text no file can hold is repaired into ``repaired_dir/<student>.ipynb`` (a private temporary folder by
    default), which is then the submission's ``path``."""
    if problem is None:
        problem = notebook_problem(path, expected_ids)
    repaired = 0
    if problem is None:
        copy = (repaired_dir or scratch_folder()) / f"{student_id}.ipynb"
        repaired = repair_notebook(path, copy)
        if repaired:
            log.warning("%s (student %s): %d character(s) that no file can hold (lone surrogates, NUL) replaced by "
                        "U+FFFD; the repaired copy %s is graded", storable(str(path)), student_id, repaired, copy)
            path = copy
        else:
            copy.unlink(missing_ok=True)  # a repaired copy of an earlier version of this submission
    return Submission(student_id, path, storable(problem) if problem else None, submitted_at, repaired)


REPAIRED = ".course/repaired"  # in a grading run's folder: the repaired copies that were graded


def repair_notes(runs: list[Path], students: set[str]) -> list[str]:
    """A line for each of ``students`` whose notebook was repaired before grading in one of ``runs``."""
    repaired = sorted({p.stem for run in runs for p in (Path(run) / REPAIRED).glob("*.ipynb")} & students)
    return [f"{sid}: characters of the notebook that no file can hold (lone surrogates, NUL) were replaced by "
            "U+FFFD before grading; the answers show them as \ufffd" for sid in repaired]


def id_collisions(found: list[tuple[str, Path]], folder: Path) -> list[str]:
    """One line per student id that two or more files map to (ids equal but for case included)."""
    by_id: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    for student_id, path in found:
        by_id[student_id.casefold()].append((student_id, path))
    lines = []
    for group in by_id.values():
        if len(group) > 1:
            files = ", ".join(storable(str(path.relative_to(folder))) for _, path in group)
            ids = " / ".join(sorted({sid for sid, _ in group}))
            lines.append(f"student id {ids!r}: {files}")
    return lines


def extract_zip(archive: Path, destination: Path) -> Path:
    """Unpack the notebooks of an LMS export into ``destination`` as nbgrader's ``submitted/`` tree:
    ``<student>/<assignment>/<notebook>.ipynb``, with the file name's time in ``timestamp.txt``.

    Student ids come from the file names through nbgrader's ``FileNameCollectorPlugin`` and
    ``course_config.ZIP_FILENAME_REGEXP``; with several attempts, the latest (by the
    ``timestamp`` group, else by name) wins. Members are read by name, never extracted by
    path, so an archive cannot write outside ``destination``. A file whose name does not
    match keeps its name and is graded 0 with the reason.
    """
    from nbgrader.plugins.zipcollect import FileNameCollectorPlugin

    collector = FileNameCollectorPlugin(named_regexp=cfg.ZIP_FILENAME_REGEXP)
    try:
        members = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise SubmissionsError(f"{archive}: not a readable zip archive ({error})") from error
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    chosen: dict[str, tuple[str, zipfile.ZipInfo]] = {}
    with members:
        for info in members.infolist():
            name = Path(info.filename).name
            if info.is_dir() or not name.endswith(".ipynb") or info.filename.startswith("__MACOSX"):
                continue
            found = collector.collect(name)
            student = found["student_id"] if found and STUDENT_ID.match(found["student_id"]) else None
            if student is None:  # each unmatched file a row of its own, even when two names clean alike
                key = base = f"{UNMATCHED}{safe_student_id(Path(name).stem)}"[:64]
                number = 1
                while key in chosen:
                    number += 1
                    key = f"{base[:60]}-{number}"
                chosen[key] = (name, info)
                continue
            order = found.get("timestamp") or name
            if student not in chosen or order > chosen[student][0]:
                chosen[student] = (order, info)
        for key, (order, info) in chosen.items():
            folder = destination / key / cfg.ASSIGNMENT_ID
            folder.mkdir(parents=True)
            (folder / f"{cfg.NOTEBOOK_NAME}.ipynb").write_bytes(members.read(info))
            if order != Path(info.filename).name:  # the regexp's timestamp group, not the fallback
                (folder / TIMESTAMP_FILE).write_text(order)
    if not chosen:
        raise SubmissionsError(f"{archive}: holds no .ipynb file")
    return destination


UNMATCHED = "unmatched-"  # prefix of the rows of zip members whose name carries no student id


def find_submissions(folder: Path, *, repaired_dir: Path | None = None) -> list[Submission]:
    """Submissions under ``folder``, sorted by student id, each checked for problems.

    Raises ``SubmissionsError`` for a folder that cannot be used: missing, empty, mixed layouts, or
    files that map to one student id (naming them all). ``repaired_dir``: where notebooks that hold
    text no file can hold are repaired (``checked_submission``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SubmissionsError(f"{folder}: not a folder of submissions (or a .zip export)")
    nested = sorted(folder.glob(f"*/{cfg.ASSIGNMENT_ID}/{cfg.NOTEBOOK_NAME}.ipynb"))
    flat = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
    if nested and flat:
        raise SubmissionsError(f"{folder}: holds both an nbgrader submitted/ tree and loose .ipynb files; use one layout")
    found = [(p.parent.parent.name, p) for p in nested] or [(p.stem, p) for p in flat]
    if not found:
        raise SubmissionsError(
            f"{folder}: no submissions found (expected <student>/{cfg.ASSIGNMENT_ID}/{cfg.NOTEBOOK_NAME}.ipynb "
            "or <student>.ipynb)")
    problems = {}
    for index, (student_id, path) in enumerate(found):
        if student_id.startswith(UNMATCHED):
            problems[index] = (f"{path.name}: the file name does not match course_config.ZIP_FILENAME_REGEXP, "
                               "so the student is unknown")
        elif not STUDENT_ID.match(student_id):
            problems[index] = f"{path.name}: '{student_id}' is not a usable student id (letters, digits, '.', '_', '-')"
            found[index] = (safe_student_id(student_id), path)
    collisions = id_collisions(found, folder)
    if collisions:
        raise SubmissionsError(
            f"{folder}: files that map to the same student id, so none of them was graded:\n  " + "\n  ".join(collisions)
            + "\nA student id is the file name (the folder name in a submitted/ tree) with every character other than "
            "letters, digits, '.', '_' and '-' replaced by '_' and '.', '_', '-' trimmed at both ends; ids that differ "
            "only in case are one. Keep one file per student (rename or remove the others) and grade again.")
    expected = expected_grade_ids()
    submissions = []
    for index, (student_id, path) in enumerate(found):
        stamp = path.parent / TIMESTAMP_FILE if nested else None
        submitted_at = stamp.read_text(errors="replace").strip() if stamp and stamp.is_file() else None
        submissions.append(checked_submission(student_id, path, expected, repaired_dir, problem=problems.get(index),
                                              submitted_at=submitted_at))
    return submissions
