"""CSV files the grader writes for people and other tools (grades, the LMS's import, manual grades).

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and Excel
also after a tab or a carriage return: ``=HYPERLINK(...)`` in a student's LMS display name, which
students can set themselves, would reach the TA's spreadsheet as a live formula. Every CSV written
here goes through ``spreadsheet_cell``: text that starts so is prefixed with a single quote, as
OWASP's CSV-injection advice says, while numbers the grader writes stay numbers.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from autograder.errors import InputError
from autograder.files import atomic_write
from autograder.text import storable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP's list: what makes a spreadsheet read a formula
NOT_FORMULAS = frozenset({"-"})  # a lone dash, no formula: Moodle's worksheet writes it for "none", and reads it back


def spreadsheet_cell(value: object) -> str:
    """One cell as a spreadsheet should read it.

    ``int`` and ``float`` (the grader's own numbers, a negative one included) are written as numbers;
    ``None`` as an empty cell; text that starts with a character of ``FORMULA_START`` gets a leading
    ``'``, so the spreadsheet shows it as text (a lone ``-`` is no formula and stays as it is); text that
    no file can hold is repaired (``autograder.text``).
    """
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    text = storable(str(value))
    return "'" + text if text.startswith(FORMULA_START) and text not in NOT_FORMULAS else text


def from_spreadsheet(cell: str) -> str:
    """Text read back from a CSV this module wrote (manual-import): the quote ``spreadsheet_cell`` added removed."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_START) else cell


def write_csv_atomically(path: Path, header: list[str], rows: list[list[object]], *, quote_all: bool = False) -> None:
    """Write a CSV through ``<name>.tmp`` and ``os.replace``: readers see the old file or the new one.

    Every cell, header included, goes through ``spreadsheet_cell``; ``quote_all`` puts every cell in
    quotes (Blackboard asks it of comma-separated uploads).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow([spreadsheet_cell(name) for name in header])
    writer.writerows([spreadsheet_cell(value) for value in row] for row in rows)
    atomic_write(path, buffer.getvalue())


def format_points(value: float | None) -> str:
    """Points as a CSV cell: ``1.5``, ``2`` (no ``.0``); empty where there is no number."""
    return "" if value is None else f"{value:g}"


def parse_points(value: str, where: str) -> float:
    """The number in a CSV cell; ``InputError`` naming ``where`` (file, row, column) when it holds none."""
    try:
        return float(value)
    except ValueError:
        raise InputError(f"{where} holds {value!r}, not a number; was the file edited by hand?") from None
