"""Run the trusted source notebook's own code in this process, without its tests.

Calibration, the figure generator and the benchmarks need the notebook's functions (the data
pipeline, the reference networks, ``short_training_run``) without copying them: the notebook
stays the one place they are written. Only the instructor's source notebook is ever run this
way; student code goes through the graded kernel, never through ``exec`` here.

It also reads what the source notebook holds for the grader: each cell's nbgrader metadata, the hidden
tests of its test cells and the literals its locked cells give (``judge.py`` runs them).
"""
from __future__ import annotations

import ast
import contextlib
import os
import re
from pathlib import Path
from typing import Any, Iterator

import nbformat

import course_config as cfg

# the hidden tests of a test cell of the source notebook, which the grader runs and the kernel never sees
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[ \t]*\n(.*?)^[ \t]*### END HIDDEN TESTS[ \t]*$", re.M | re.S)


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


def hidden_tests(notebook: Path) -> dict[str, str]:
    """grade id -> the hidden-test code of each test cell of the (trusted) source notebook."""
    tests = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            blocks = HIDDEN.findall(cell.source)
            if blocks:
                tests[meta["grade_id"]] = "\n".join(blocks)
    return tests


def strip_hidden(source: str) -> str:
    """A test cell's source without its hidden tests (what the kernel runs)."""
    return HIDDEN.sub("", source)


def given_literals(notebook: Path) -> dict[str, Any]:
    """Names the notebook's locked, ungraded code cells bind to literals (``NAME = {...}``)."""
    values: dict[str, Any] = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type != "code" or not meta.get("locked") or meta.get("grade") or meta.get("solution"):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:
                    continue
                if isinstance(target, ast.Name):
                    values[target.id] = value
                elif isinstance(target, ast.Tuple) and isinstance(value, tuple) and len(value) == len(target.elts):
                    values.update({t.id: v for t, v in zip(target.elts, value) if isinstance(t, ast.Name)})
    return values
