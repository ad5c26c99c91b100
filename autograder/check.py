"""Check a notebook before submitting: the visible tests, in a fresh kernel, in seconds.

For students. The notebook runs top to bottom in a new kernel, with its test cells replaced
by the release's own (so an edited test cannot fool the check, and no hidden test is ever
involved: the release has none) and with ``NBGRADER_EXECUTION`` set, so the long experiments
run their tiny version. Prints, per graded cell, whether its visible tests pass and the
message of the first failure, which answers are not attempted, and which free-text answers
are still empty. It never shows hidden tests or expected values.

    python -m autograder check NOTEBOOK
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

import course_config as cfg
from autograder.notebook_code import grading_environment, is_test_cell
from autograder.submissions import SubmissionsError, expected_grade_ids, notebook_problem

STUB = "raise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"


@dataclass
class Verdict:
    grade_id: str
    kind: str  # "test", "answer" or "free text"
    ok: bool
    message: str


def grade_id(cell: nbformat.NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


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


def first_error(cell: nbformat.NotebookNode) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename')}: {output.get('evalue')}".rstrip(": ")
    return None


def verdicts(nb: nbformat.NotebookNode) -> list[Verdict]:
    """Per graded or answer cell, in notebook order, what the executed notebook shows."""
    found = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
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
            found.append(Verdict(gid, "test", error is None, "visible tests pass" if error is None else error))
    return found


def check(notebook: Path, timeout: int = cfg.CELL_TIMEOUT_S) -> list[Verdict]:
    """Execute ``notebook`` with the release's visible tests; return the verdicts."""
    notebook = Path(notebook)
    problem = notebook_problem(notebook, expected_grade_ids()) if notebook.is_file() else f"{notebook}: no such file"
    if problem:
        raise SubmissionsError(problem)
    nb = with_release_tests(nbformat.read(notebook, as_version=4))
    with grading_environment():
        client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                                resources={"metadata": {"path": str(run_folder(notebook))}})
        client.execute()
    return verdicts(nb)


def format_verdicts(items: list[Verdict]) -> str:
    width = max(len(v.grade_id) for v in items)
    lines = [f"{'PASS' if v.ok else 'TODO' if v.kind != 'test' else 'FAIL'}  {v.grade_id:<{width}}  {v.message}"
             for v in items]
    tests = [v for v in items if v.kind == "test"]
    lines.append(f"\n{sum(v.ok for v in tests)}/{len(tests)} test cells pass their visible tests; "
                 f"{sum(not v.ok for v in items if v.kind == 'free text')} free-text answer(s) still empty. "
                 "More tests run when the notebook is graded.")
    return "\n".join(lines)
