"""LMS downloads for the tests, named exactly as each LMS names them (``tests/lms/<lms>/``).

Each ``download.csv`` lists the zip's members as the LMS writes them (``path``), which example
notebook each holds (``notebook``: a stem of ``examples/submissions``; ``-`` for the LMS's own text
files) and whose submission the grader must take it for (``student``; empty: not graded, an older
upload of the same student). ``roster.csv`` is the LMS's gradebook export of the class, ``upload.csv``
the import file that export must write from it (the golden file).

The zips are written as the LMS writes them: Canvas with rubyzip, whose UTF-8 names carry no UTF-8
flag (read as cp437 by a naive reader); Moodle (ZipStream-PHP) and Blackboard (Java) with the flag.
"""
from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import course_config as cfg

FIXTURES = Path(__file__).resolve().parent / "lms"
UTF8_FLAG = {"canvas": False, "moodle": True, "blackboard": True}


class RubyzipInfo(zipfile.ZipInfo):
    """A member as rubyzip writes it: the name's UTF-8 bytes without the zip's UTF-8 flag (bit 11)."""

    def _encodeFilenameFlags(self):
        return self.filename.encode("utf-8"), self.flag_bits & ~0x800


def members(lms: str) -> list[dict[str, str]]:
    with open(FIXTURES / lms / "download.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def download_zip(lms: str, path: Path, *, content: bytes | None = None, extra: dict[str, str | bytes] | None = None,
                 without: str | None = None) -> Path:
    """The LMS's download of ``tests/lms/<lms>/download.csv`` at ``path``; each notebook holds its example
    (or ``content``); ``extra``: more members, path -> example stem or the bytes it holds; ``without``: the
    student left out."""
    rows = [m for m in members(lms) if without is None or m["student"] != without]
    rows += [{"path": p, "notebook": n, "student": ""} for p, n in (extra or {}).items()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for row in rows:
            if isinstance(row["notebook"], bytes):
                data = row["notebook"]
            elif row["notebook"] == "-":
                data = f"Name: {row['path']}\nSubmission Field: There is no student submission text data.\n".encode()
            else:
                data = content if content is not None else (cfg.EXAMPLES_DIR / f"{row['notebook']}.ipynb").read_bytes()
            info = (zipfile.ZipInfo if UTF8_FLAG[lms] else RubyzipInfo)(row["path"], (2026, 10, 20, 8, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def expected_students(lms: str) -> dict[str, str]:
    """Student id -> the example notebook the grader must grade for them."""
    return {row["student"]: row["notebook"] for row in members(lms) if row["student"]}
