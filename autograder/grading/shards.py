"""Split grading across machines (one shard each) and merge their output folders.

A Kubernetes Indexed Job (``deploy/k8s/grade-job.yaml``) runs one ``grade`` per pod, each on
its own slice of the same submissions folder, into its own ``--out`` folder; ``merge`` then
combines those folders into one ``grades.csv`` and one ``feedback/``.

    python -m autograder grade SUBMISSIONS --out out/shard-0 --shard 0/4
    python -m autograder merge out/shard-* --out out/merged

Which shard grades a student: the first 8 bytes of the SHA-256 of the student id, modulo the
number of shards. The choice depends on the id alone, so it is the same whatever order the
files are listed in, and a submission added while the pods start moves no other student to
another shard (no one graded twice or skipped). Python's ``hash()`` would not do: it is salted
per process. The price is balance: shards differ in size by a few students (binomially).
"""
from __future__ import annotations

import csv
import hashlib
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from autograder.csvfiles import write_csv_atomically
from autograder.grading.submissions import Submission
from autograder.errors import InputError

GRADES_CSV = "grades.csv"  # the file name that ``grade --out DIR`` writes
FEEDBACK_DIR = "feedback"  # the folder of ``<student>.html`` that ``grade --out DIR`` writes
SHARD_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def check_shard(index: int, count: int) -> None:
    """Raise ``ValueError`` unless ``0 <= index < count``, both integers; change nothing."""
    for name, value in (("index", index), ("count", count)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"shard {name} must be an integer, not {value!r}")
    if count < 1:
        raise InputError(f"shard count must be at least 1, not {count} (use --shard 0/1 for one machine)")
    if not 0 <= index < count:
        raise InputError(f"shard index {index} is outside 0..{count - 1}: shards of {count} are numbered from 0 "
                         f"(Kubernetes' JOB_COMPLETION_INDEX), so use --shard i/{count} with 0 <= i < {count}")


def parse_shard(spec: str) -> tuple[int, int]:
    """Read ``"i/N"`` (the ``--shard`` option) into ``(i, N)``; raise ``ValueError`` naming the fix."""
    match = SHARD_SPEC.match(spec)
    if not match:
        raise InputError(f"--shard {spec!r}: expected i/N, the shard index and the number of shards, e.g. 0/4")
    index, count = int(match[1]), int(match[2])
    check_shard(index, count)
    return index, count


def shard_of(student_id: str, count: int) -> int:
    """The shard (0..count-1) that grades ``student_id``: SHA-256 of the id, modulo ``count``."""
    digest = hashlib.sha256(student_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select_shard(submissions: Sequence[Submission], index: int, count: int) -> list[Submission]:
    """The submissions that shard ``index`` of ``count`` grades, in their given order.

    Reads nothing from disk; raises ``ValueError`` for a shard outside ``0..count-1``. Every
    submission falls in exactly one shard of the same ``count``.
    """
    check_shard(index, count)
    return [s for s in submissions if shard_of(s.student_id, count) == index]


def read_grades(path: Path) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of a ``grades.csv``; ``ValueError`` naming the file if it is absent or empty."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; grade into that folder first "
                         f"(python -m autograder grade SUBMISSIONS --out {path.parent}) or leave it out")
    with open(path, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    if not table or not table[0]:
        raise InputError(f"{path}: empty file, no header; grade into {path.parent} again")
    return table[0], table[1:]


def merged_rows(shard_dirs: list[Path]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the shards' ``grades.csv`` combined, sorted by student id.

    Raises ``ValueError`` when a header differs from the first shard's, or when a student has a
    row in two shards (naming both folders): either means the shards were not one grading run.
    """
    tables = [(folder, *read_grades(folder / GRADES_CSV)) for folder in shard_dirs]
    first, header, _ = tables[0]
    owner: dict[str, Path] = {}
    rows: list[list[str]] = []
    for folder, this_header, this_rows in tables:
        if this_header != header:
            missing = [c for c in header if c not in this_header]
            extra = [c for c in this_header if c not in header]
            raise InputError(
                f"{folder / GRADES_CSV}: header differs from {first / GRADES_CSV} "
                f"(missing {missing or 'none'}, extra {extra or 'none'}, or another order); "
                "grade every shard with the same source notebook and autograder version")
        for row in this_rows:
            student = row[0]
            if student in owner:
                raise InputError(f"student {student!r} was graded in two shards: {owner[student]} and {folder}; "
                                 "use the same --shard i/N count for every pod, or drop the stale folder")
            owner[student] = folder
            rows.append(row)
    return header, sorted(rows, key=lambda row: row[0])


def feedback_files(shard_dirs: list[Path]) -> list[Path]:
    """Every shard's ``feedback/*.html``; ``ValueError`` if two shards hold the same name (naming both)."""
    origin: dict[str, Path] = {}
    files = []
    for folder in shard_dirs:
        for html in sorted((folder / FEEDBACK_DIR).glob("*.html")):
            if html.name in origin:
                raise InputError(f"feedback {html.name} exists in two shards: {origin[html.name]} and {folder}; "
                                 "remove the stale one")
            origin[html.name] = folder
            files.append(html)
    return files


def merge(shard_dirs: list[Path], dest: Path) -> Path:
    """Combine the output folders of ``grade --shard`` runs into ``dest``; return ``dest/grades.csv``.

    Reads ``<shard>/grades.csv`` and ``<shard>/feedback/*.html``; writes ``dest/feedback/`` and
    then ``dest/grades.csv`` (atomically, and last, so a complete grades.csv means complete
    feedback). Raises ``ValueError`` naming the folder and the fix for: no shard, a missing
    or empty grades.csv, headers that differ, a student in two shards, ``dest`` being a shard.
    """
    shard_dirs = [Path(d) for d in shard_dirs]
    dest = Path(dest)
    if not shard_dirs:
        raise InputError("merge needs at least one shard folder (the --out folders of grade --shard i/N)")
    for folder in shard_dirs:
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder; give the --out folders of grade --shard i/N")
        if dest.resolve() == folder.resolve():
            raise InputError(f"{dest}: is also a shard folder; merge into a new folder (--out DIR)")
    if len({d.resolve() for d in shard_dirs}) != len(shard_dirs):
        raise InputError(f"a shard folder is given twice in {[str(d) for d in shard_dirs]}")
    header, rows = merged_rows(shard_dirs)  # every check passes before anything is written
    feedback = feedback_files(shard_dirs)
    (dest / FEEDBACK_DIR).mkdir(parents=True, exist_ok=True)
    for html in feedback:
        shutil.copyfile(html, dest / FEEDBACK_DIR / html.name)
    path = dest / GRADES_CSV
    write_csv_atomically(path, header, rows)
    return path
