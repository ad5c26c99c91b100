"""Run the trusted source notebook's own code in this process, without its tests.

Calibration, the figure generator and the benchmarks need the notebook's functions (the data
pipeline, the reference networks, ``short_training_run``) without copying them: the notebook
stays the one place they are written. Only the instructor's source notebook is ever run this
way; student code goes through the graded kernel, never through ``exec`` here.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import nbformat

import course_config as cfg


def nbgrader_meta(cell: nbformat.NotebookNode) -> dict:
    """A cell's nbgrader metadata (``grade_id``, ``grade``, ``solution``, ``locked``, ``points``); empty if none."""
    return cell.metadata.get("nbgrader", {})


def is_test_cell(cell: nbformat.NotebookNode) -> bool:
    """An nbgrader autograder test cell: graded, locked, not a solution."""
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and meta.get("grade", False) and not meta.get("solution", False)


def is_experiment_cell(cell: nbformat.NotebookNode) -> bool:
    """A cell tagged ``experiment``: the long training runs a student launches by hand."""
    return "experiment" in cell.metadata.get("tags", [])


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """``chdir`` for the duration of the block, undone even on error."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def grading_environment() -> Iterator[None]:
    """Set ``NBGRADER_EXECUTION`` as nbgrader does, so the notebook takes its grading path."""
    previous = os.environ.get("NBGRADER_EXECUTION")
    os.environ["NBGRADER_EXECUTION"] = "autograde"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["NBGRADER_EXECUTION"]
        else:
            os.environ["NBGRADER_EXECUTION"] = previous


def load_namespace(notebook: Path = cfg.SOURCE_NOTEBOOK) -> dict[str, Any]:
    """Execute the notebook's code cells except tests and experiments; return its globals.

    The cells run in the notebook's folder (so ``data/`` resolves) with ``NBGRADER_EXECUTION``
    set; anything the notebook prints goes to this process's stdout.
    """
    nb = nbformat.read(notebook, as_version=4)
    namespace: dict[str, Any] = {"__name__": "__notebook__"}
    with working_directory(notebook.parent), grading_environment():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or is_test_cell(cell) or is_experiment_cell(cell):
                continue
            code = compile(cell.source, f"{notebook.name}[cell {index}]", "exec")
            exec(code, namespace)  # noqa: S102 - the instructor's own source notebook
    return namespace
