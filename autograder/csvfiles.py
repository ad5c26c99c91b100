"""CSV files the grader writes for people and other tools (grades, the LMS's import, manual grades)."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path


def write_csv_atomically(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Write a CSV through ``<name>.tmp`` and ``os.replace``: readers see the old file or the new one."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
