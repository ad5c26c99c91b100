"""Find the submissions in a folder and check that each is a notebook of this assignment.

Three inputs are accepted: nbgrader's ``submitted/`` tree
(``<student>/<assignment>/<notebook>.ipynb``), a flat folder of ``<student>.ipynb`` files, and
a .zip of notebooks as a learning-management system's download names them (``course_config.LMS``
picks the names, ``autograder/lms.py`` reads them; ``extract_zip``). A file that is not a readable
notebook of this assignment is not an exception: it becomes a submission with a ``problem`` that the
grader records as a zero with that reason. A notebook of a download whose name is not the LMS's is
the grader's input fault (``fault``: no score, nobody's row in the gradebook); when none, or more
than ``UNMATCHED_TOLERATED``, are the LMS's, the setting is wrong and nothing is graded.

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
import unicodedata
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import nbformat

import course_config as cfg
from autograder.errors import InputError
from autograder.late import TIMESTAMP_FILE
from autograder.text import repaired_json, storable
from autograder.notebook_code import nbgrader_meta

log = logging.getLogger(__name__)

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SubmissionsError(InputError):
    """The submissions folder itself cannot be used (missing, empty, mixed layouts)."""


@dataclass(frozen=True)
class Submission:
    student_id: str
    path: Path
    problem: str | None = None  # why it cannot be graded; None when it can
    submitted_at: str | None = None  # as written in timestamp.txt (autograder/late.py reads it)
    repaired: int = 0  # characters no file can hold (lone surrogates, NUL) replaced by U+FFFD in ``path``
    origin: dict | None = None  # what the LMS's download said (``lms.json``): its member path, ids, name, late marker
    fault: str | None = None  # why the grader cannot grade it as anyone's (a name no student id can be read from)


def expected_grade_ids(source_notebook: Path = cfg.SOURCE_NOTEBOOK) -> set[str]:
    """Grade ids of the graded cells of the source notebook."""
    nb = nbformat.read(source_notebook, as_version=4)
    return {cell.metadata["nbgrader"]["grade_id"] for cell in nb.cells
            if nbgrader_meta(cell).get("grade")}


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
    ids = [nbgrader_meta(cell).get("grade_id") for cell in nb.cells
           if nbgrader_meta(cell).get("grade")]
    duplicated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicated:
        return f"{path.name}: graded cells appear more than once: {', '.join(duplicated)}"
    present = set(ids) & expected_ids
    if not present:
        return f"{path.name}: no graded cell of {cfg.ASSIGNMENT_ID} (another assignment's notebook?)"
    return None


def safe_student_id(raw: str, default: str = "unnamed") -> str:
    """A usable id made from ``raw`` (for the row of a file whose name is not one, or a Gradescope
    submitter): every character other than an ASCII letter, digit, ``.``, ``_`` or ``-`` becomes
    ``_``, then leading and trailing ``.``, ``_`` and ``-`` go, and the first 64 characters are kept
    (``default`` if none is left). The result always matches ``STUDENT_ID``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw).strip("._-")[:64] or default


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
                       *, problem: str | None = None, submitted_at: str | None = None,
                       origin: dict | None = None) -> Submission:
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
    return Submission(student_id, path, storable(problem) if problem else None, submitted_at, repaired, origin)


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


UNMATCHED = "unmatched-"  # prefix of the rows of zip members whose name carries no student id
ORIGIN_FILE = "lms.json"  # beside the notebook in submitted/<student>/<assignment>/: what the LMS's download said
UNMATCHED_TOLERATED = 3  # more unmatched notebook names than this is the pattern's fault, not the students'


def member_path(info: zipfile.ZipInfo) -> str:
    """A zip member's path as the LMS wrote it: UTF-8 even without the zip's UTF-8 flag (rubyzip, which
    Canvas uses, writes UTF-8 names without it, which Python reads as cp437), composed (NFC), ``/``-separated."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass  # a cp437 name indeed
    return unicodedata.normalize("NFC", name.replace("\\", "/"))


@dataclass
class Download:
    """One notebook of an LMS download: its path in the zip and what its name says (None: nothing)."""
    info: zipfile.ZipInfo
    path: str
    fields: dict[str, str] | None

    def order(self) -> tuple:
        """Later uploads sort last: Canvas's file id, Blackboard's attempt time. Moodle keeps one submission
        per student, maybe with several files: the notebook's own name sorts last, then a name that holds it
        (``W4 Tutorial1 - Copy.ipynb``), then the path."""
        fields = self.fields or {}
        upload = Path(fields.get("file", self.path)).name
        letters = re.sub(r"[^0-9a-z]", "", upload.lower())
        return (int(fields["order"]) if fields.get("order", "").isdigit() else -1, fields.get("timestamp", ""),
                upload == f"{cfg.NOTEBOOK_NAME}.ipynb", re.sub(r"[^0-9a-z]", "", cfg.NOTEBOOK_NAME.lower()) in letters,
                self.path)


def read_download(archive: Path) -> list[Download]:
    """The notebooks of an LMS download, each with the fields of its name; ``SubmissionsError`` when the
    archive is unreadable, holds no notebook, or when no name or more than ``UNMATCHED_TOLERATED`` names
    are the LMS's (a wrong ``course_config.LMS`` or pattern: nothing is graded)."""
    from autograder.lms import download_pattern, read_download_name

    pattern, source = download_pattern()
    try:
        with zipfile.ZipFile(archive) as members:
            infos = members.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise SubmissionsError(f"{archive}: not a readable zip archive ({error})") from error
    found = []
    for info in infos:
        path = member_path(info)
        if info.is_dir() or not path.lower().endswith(".ipynb") or path.startswith("__MACOSX/"):
            continue
        found.append(Download(info, path, read_download_name(path)))
    if not found:
        raise SubmissionsError(f"{archive}: holds no .ipynb file")
    unmatched = [d.path for d in found if d.fields is None]
    if len(unmatched) == len(found) or len(unmatched) > UNMATCHED_TOLERATED:
        shown = ", ".join(repr(storable(name)) for name in unmatched[:5])
        raise SubmissionsError(
            f"{archive}: {len(unmatched)} of the {len(found)} notebook names are not the names of {source}; "
            f"the first: {shown}. This is the grader's setting, not the students' fault: set course_config.LMS to the "
            "LMS that made the zip (canvas, moodle or blackboard), or course_config.ZIP_FILENAME_REGEXP to a pattern "
            f"of these names (pattern now: {pattern.pattern!r}). Nothing was graded.")
    return found


def extract_zip(archive: Path, destination: Path) -> Path:
    """Unpack the notebooks of an LMS download into ``destination`` as nbgrader's ``submitted/`` tree:
    ``<student>/<assignment>/<notebook>.ipynb``, with the name's time in ``timestamp.txt`` and what the
    name said in ``lms.json`` (the member's path in the zip, the LMS's user id and name, its late marker).

    Names are read by ``autograder.lms`` (``course_config.LMS``'s pattern, or ``ZIP_FILENAME_REGEXP``);
    the student id is the LMS's id (Canvas's user id, Moodle's participant id, Blackboard's username).
    With several notebooks of one student, the latest wins (``Download.order``); the others are listed
    in ``lms.json``. Members are read by name, never extracted by path, so an archive cannot write
    outside ``destination``. A notebook whose name is not the LMS's stays in the tree as
    ``unmatched-<name>``, marked so: the grader cannot tell whose it is (``find_submissions``).
    """
    from autograder.lms import lms_format

    downloads = read_download(archive)
    custom = bool(getattr(cfg, "ZIP_FILENAME_REGEXP", None))
    lms = "custom" if custom else cfg.LMS
    late_marker = not custom and lms_format().late_marker
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    by_student: dict[str, list[Download]] = defaultdict(list)
    chosen: dict[str, tuple[Download, dict]] = {}
    for download in downloads:
        if download.fields is None:  # each unmatched file a row of its own, even when two names clean alike
            key = base = f"{UNMATCHED}{safe_student_id(Path(download.path).stem)}"[:64]
            number = 1
            while key in chosen:
                number += 1
                key = f"{base[:60]}-{number}"
            chosen[key] = (download, {"lms": lms, "member": download.path, "unmatched": True})
        else:
            by_student[download.fields["student_id"]].append(download)
    cleaned: dict[str, list[str]] = defaultdict(list)
    for lms_id in by_student:
        cleaned[(lms_id if STUDENT_ID.match(lms_id) else safe_student_id(lms_id)).casefold()].append(lms_id)
    clashes = [ids for ids in cleaned.values() if len(ids) > 1]
    if clashes:
        raise SubmissionsError(f"{archive}: LMS ids that make the same student id, so none of them was graded: "
                               + "; ".join(" / ".join(map(repr, ids)) for ids in clashes))
    for lms_id, files in sorted(by_student.items()):
        files.sort(key=Download.order)
        latest = files[-1]
        sid = lms_id if STUDENT_ID.match(lms_id) else safe_student_id(lms_id)
        origin = {"lms": lms, "member": latest.path, "lms_id": lms_id, "name": latest.fields.get("name", ""),
                  "late": late_marker and bool(latest.fields.get("late")),
                  "not_graded": [f.path for f in files[:-1]]}
        if files[:-1]:
            log.warning("%s: %d notebooks of student %s; the latest is graded (%s), not %s", archive, len(files), sid,
                        storable(latest.path), ", ".join(storable(f.path) for f in files[:-1]))
        chosen[sid] = (latest, origin)
    with zipfile.ZipFile(archive) as members:
        for key, (download, origin) in chosen.items():
            folder = destination / key / cfg.ASSIGNMENT_ID
            folder.mkdir(parents=True)
            (folder / f"{cfg.NOTEBOOK_NAME}.ipynb").write_bytes(members.read(download.info))
            (folder / ORIGIN_FILE).write_text(json.dumps(origin, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
            if download.fields and download.fields.get("timestamp"):
                (folder / TIMESTAMP_FILE).write_text(download.fields["timestamp"])
    return destination


def read_origin(folder: Path) -> dict | None:
    """What an LMS download said of the submission in ``folder`` (``lms.json``), or None."""
    try:
        data = json.loads((Path(folder) / ORIGIN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
        if not STUDENT_ID.match(student_id):
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
        origin = read_origin(path.parent) if nested else None
        if origin and origin.get("unmatched"):
            submissions.append(unmatched_submission(student_id, path, origin))
            continue
        submissions.append(checked_submission(student_id, path, expected, repaired_dir, problem=problems.get(index),
                                              submitted_at=submitted_at, origin=origin))
    return submissions


def unmatched_submission(key: str, path: Path, origin: dict) -> Submission:
    """The row of a notebook whose download name carries no student id: a fault of the grader's input
    (``error: grader: ...``, no score), never a student's; its name as it is in the zip."""
    from autograder.lms import download_pattern

    try:
        source = download_pattern()[1]
    except ValueError as error:
        source = str(error)
    member = storable(str(origin.get("member", path.name)))
    return Submission(key, path, origin=origin,
                      fault=f"{member!r} in the zip: its name is not a name of {source}, so whose it is is unknown; "
                            "rename it in the zip as the LMS names the others, or grade it from a folder")
