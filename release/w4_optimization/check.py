"""Check your notebook before you submit it.

    python check.py                      # checks W4_Tutorial1.ipynb in this folder
    python check.py path/to/notebook.ipynb

It runs the notebook from top to bottom in a fresh kernel, as the grader does (the long
experiments run their tiny version, so this takes seconds), then prints, for each graded cell:

    PASS  the visible tests of this cell pass
    FAIL  a visible test fails (with its message), or you edited a locked test cell
    TODO  an answer not written yet, or a free-text answer still empty

and exits with status 1 when any test fails. More tests run when your notebook is graded; this
script has none of them and cannot show them. It needs only what the notebook itself needs
(Python, Jupyter and the notebook's libraries) and the files of this folder.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

NOTEBOOK = "W4_Tutorial1.ipynb"
CELL_TIMEOUT_S = 600  # a cell that runs longer is stuck: the grader's own limit is shorter
STUB = "raise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"


@dataclass
class Verdict:
    grade_id: str
    kind: str  # "test", "answer" or "free text"
    ok: bool
    message: str


def nbgrader_meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_test_cell(cell: dict) -> bool:
    """A locked autograder test cell: graded, not an answer."""
    meta = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def checksum(cell: dict) -> str:
    """nbgrader's checksum of a cell (``nbgrader.utils.compute_checksum``), in the standard library."""
    meta = nbgrader_meta(cell)
    digest = hashlib.md5()
    for part in (cell["source"], cell["cell_type"], str(bool(meta.get("grade"))), str(bool(meta.get("solution"))),
                 str(bool(meta.get("locked"))), meta["grade_id"]):
        digest.update(part.encode("utf-8"))
    if meta.get("grade"):
        digest.update(str(float(meta["points"])).encode("utf-8"))
    return digest.hexdigest()


def edited_tests(nb) -> set[str]:
    """Locked test cells whose source differs from the one released (nbgrader's checksum says so)."""
    return {nbgrader_meta(c)["grade_id"] for c in nb.cells
            if is_test_cell(c) and nbgrader_meta(c).get("checksum") and checksum(c) != nbgrader_meta(c)["checksum"]}


def first_error(cell: dict) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename')}: {output.get('evalue')}".rstrip(": ")
    return None


def verdicts(nb, edited: set[str] = frozenset()) -> list[Verdict]:
    """Per graded or answer cell, in notebook order, what the executed notebook shows."""
    found = []
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if not gid or not (meta.get("grade") or meta.get("solution")):
            continue
        if cell.cell_type == "markdown":
            empty = not cell.source.strip() or cell.source.strip() == TEXT_STUB
            found.append(Verdict(gid, "free text", not empty, "still empty" if empty else "answered"))
        elif meta.get("solution"):
            if STUB in cell.source:
                found.append(Verdict(gid, "answer", False, "not attempted yet (the cell still raises NotImplementedError)"))
            elif first_error(cell):
                found.append(Verdict(gid, "answer", False, f"the cell raises {first_error(cell)}"))
        elif is_test_cell(cell):
            error = first_error(cell)
            if error and error.startswith("NotImplementedError"):
                error = "an answer it needs is not written yet"
            if gid in edited:
                error = ("you edited this locked test cell; grading restores the original, so undo your edits"
                         + (f" ({error})" if error else ""))
            found.append(Verdict(gid, "test", error is None, "visible tests pass" if error is None else error))
    return found


def execute(nb, folder: Path, timeout: int = CELL_TIMEOUT_S):
    """Run ``nb`` in a fresh kernel in ``folder``, with the grader's switch for the tiny experiments."""
    from nbclient import NotebookClient

    previous = os.environ.get("NBGRADER_EXECUTION")
    os.environ["NBGRADER_EXECUTION"] = "validate"  # the notebook's GRADING flag: experiments run small
    try:
        NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                       resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        if previous is None:
            del os.environ["NBGRADER_EXECUTION"]
        else:
            os.environ["NBGRADER_EXECUTION"] = previous
    return nb


def format_verdicts(items: list[Verdict]) -> str:
    width = max((len(v.grade_id) for v in items), default=0)
    lines = [f"{'PASS' if v.ok else 'TODO' if v.kind != 'test' else 'FAIL'}  {v.grade_id:<{width}}  {v.message}"
             for v in items]
    tests = [v for v in items if v.kind == "test"]
    lines.append(f"\n{sum(v.ok for v in tests)}/{len(tests)} test cells pass their visible tests; "
                 f"{sum(not v.ok for v in items if v.kind == 'free text')} free-text answer(s) still empty. "
                 "More tests run when the notebook is graded.")
    return "\n".join(lines)


def check_notebook(path: Path) -> list[Verdict]:
    """Read, run and judge the notebook at ``path``; ``ValueError`` naming the file if it cannot be read."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except Exception as error:  # not JSON, not a notebook: say so, no traceback
        raise ValueError(f"{path}: not a readable notebook ({type(error).__name__}: {error})") from None
    edited = edited_tests(nb)
    data = path.parent / "data"
    folder = path.parent if data.is_dir() else Path(__file__).resolve().parent  # where data/ is
    return verdicts(execute(nb, folder), edited)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run your notebook's visible tests in a fresh kernel.")
    parser.add_argument("notebook", nargs="?", default=str(Path(__file__).resolve().parent / NOTEBOOK),
                        help=f"the notebook to check (default: {NOTEBOOK} beside this script)")
    args = parser.parse_args(argv)
    try:
        items = check_notebook(Path(args.notebook))
    except ImportError as error:
        print(f"check.py needs Jupyter's packages to run the notebook ({error}): pip install nbclient", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_verdicts(items))
    return 0 if all(v.ok for v in items if v.kind == "test") else 1


if __name__ == "__main__":
    sys.exit(main())
