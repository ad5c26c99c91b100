"""Check one notebook's visible tests, in a fresh kernel, in seconds: the instructor's side.

Students run the same code: the release notebook's last cell (``given_check``), in their editor or
through ``check.py`` beside it (``course_config.STUDENT_CHECKER``, standard library and Jupyter
only). This command runs that cell's code, from the release the course shipped, and adds what only
the instructor's copy can do: the notebook's test cells are reset to the release's own before the
run (an edited test cannot fool the check), and the notebook is first vetted like a submission
(JSON, size, assignment). Hidden tests are never involved: the release has none.

    python -m autograder check NOTEBOOK
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import nbformat

import course_config as cfg
from autograder.notebook_code import is_test_cell, nbgrader_meta
from autograder.grading.submissions import SubmissionsError, expected_grade_ids, notebook_problem


def student_checker() -> ModuleType:
    """The release's ``check.py``, imported from the source folder it is released from."""
    spec = importlib.util.spec_from_file_location("w4_student_check", cfg.STUDENT_CHECKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the checker of the release the course shipped (trusted), never the one in a submission
CHECKER = student_checker().load_checker(nbformat.read(cfg.RELEASE_NOTEBOOK, as_version=4))
Verdict, format_verdicts, verdicts = CHECKER["Verdict"], CHECKER["format_verdicts"], CHECKER["verdicts"]


def grade_id(cell: nbformat.NotebookNode) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


def with_release_tests(nb: nbformat.NotebookNode, release: Path = cfg.RELEASE_NOTEBOOK) -> nbformat.NotebookNode:
    """The student's notebook with every test cell's source reset to the release's."""
    tests = {grade_id(c): c.source for c in nbformat.read(release, as_version=4).cells if is_test_cell(c)}
    for cell in nb.cells:
        if grade_id(cell) in tests:
            cell.source = tests[grade_id(cell)]
    return nb


def run_folder(notebook: Path) -> Path:
    """Where to run: the notebook's own folder if it holds the data, else the release's."""
    if (notebook.parent / "data" / "MNIST" / "raw").is_dir():
        return notebook.parent
    return cfg.RELEASE_NOTEBOOK.parent


def check(notebook: Path, timeout: int = cfg.CELL_TIMEOUT_S) -> list:
    """Execute ``notebook`` with the release's visible tests; return the checker's verdicts."""
    notebook = Path(notebook)
    problem = notebook_problem(notebook, expected_grade_ids()) if notebook.is_file() else f"{notebook}: no such file"
    if problem:
        raise SubmissionsError(problem)
    nb = with_release_tests(nbformat.read(notebook, as_version=4))
    return verdicts(CHECKER["execute"](nb, run_folder(notebook), timeout))
