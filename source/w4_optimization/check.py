"""Check your notebook before you submit it.

    python check.py                      # checks W4_Tutorial1.ipynb in this folder
    python check.py path/to/notebook.ipynb

It runs the notebook from top to bottom in a fresh kernel, as the grader does (the long
experiments run their tiny version, so this takes seconds), then prints, for each graded cell:

    PASS  the visible tests of this cell pass
    FAIL  a visible test fails (with its message), or you edited a locked test cell
    TODO  an answer not written yet, or a free-text answer still empty

and exits with status 1 when any test fails. The check itself is the notebook's last cell (run
it there, in Jupyter or on Colab, to check the notebook as it is in the editor); this script runs
that cell's code on a saved notebook. More tests run when your notebook is graded; neither has
any of them. It needs only what the notebook itself needs (Python, Jupyter and the notebook's
libraries) and the files of this folder.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NOTEBOOK = "W4_Tutorial1.ipynb"
CHECKER_CELL = "given_check"  # the grade id of the notebook's last cell, which holds the check


def load_checker(nb) -> dict:
    """The names the notebook's checker cell defines (its code runs here; it checks nothing by itself)."""
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == CHECKER_CELL:
            namespace = {"__name__": "w4_checker", "GRADING": True}  # GRADING: define, do not run
            exec(compile(cell.source, f"{NOTEBOOK} (the {CHECKER_CELL} cell)", "exec"), namespace)  # noqa: S102
            return namespace
    raise ValueError(f"the notebook has no check cell ({CHECKER_CELL}): is it this week's {NOTEBOOK}?")


def check_notebook(path: Path) -> tuple[dict, list]:
    """(the checker, its verdicts) for the notebook at ``path``; ``ValueError`` naming the file if it cannot be read."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except Exception as error:  # not JSON, not a notebook: say so, no traceback
        raise ValueError(f"{path}: not a readable notebook ({type(error).__name__}: {error})") from None
    checker = load_checker(nb)
    folder = path.parent if (path.parent / "data").is_dir() else Path(__file__).resolve().parent  # where data/ is
    return checker, checker["check"](nb, folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run your notebook's visible tests in a fresh kernel.")
    parser.add_argument("notebook", nargs="?", default=str(Path(__file__).resolve().parent / NOTEBOOK),
                        help=f"the notebook to check (default: {NOTEBOOK} beside this script)")
    args = parser.parse_args(argv)
    try:
        checker, items = check_notebook(Path(args.notebook))
    except ImportError as error:
        print(f"check.py needs Jupyter's packages to run the notebook ({error}): pip install nbclient", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(checker["format_verdicts"](items))
    return 0 if all(v.ok for v in items if v.kind == "test") else 1


if __name__ == "__main__":
    sys.exit(main())
