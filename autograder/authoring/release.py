"""Build ``release/`` from ``source/`` with nbgrader, and prove it leaks nothing.

    python -m autograder release          # regenerate release/ and check it
    python -m autograder release --check  # only check: leaks, and drift from a fresh build
"""
from __future__ import annotations

import filecmp
import re
import shutil
import tempfile
from pathlib import Path

import nbformat

import course_config as cfg
from autograder.errors import SetupError
from autograder.grading.course import generate_assignment, make_course

# Markers that only the source may contain; the last three label the graders' rubrics.
FORBIDDEN_MARKERS = ["BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
                     "MARK SCHEME", "Model answer", "Rubric ("]
REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)
MIN_LEAK_LINE = 12  # shorter lines ("return x") are too common to prove a leak


def build_release(workdir: Path) -> Path:
    """Generate the student version of ``source/`` in ``workdir``; return its assignment folder."""
    return generate_assignment(make_course(workdir))


def secret_lines(source_nb: nbformat.NotebookNode) -> set[str]:
    """Lines that appear only inside solution or hidden-test regions of the source."""
    inside, outside = set(), set()
    for cell in source_nb.cells:
        text = cell.source
        for match in REGION.finditer(text):
            inside.update(line.strip() for line in match.group(2).splitlines())
        outside.update(line.strip() for line in REGION.sub("", text).splitlines())
    return {line for line in inside - outside if len(line) >= MIN_LEAK_LINE}


def leak_problems(release_dir: Path, source_notebook: Path = cfg.SOURCE_NOTEBOOK) -> list[str]:
    """Everything in ``release_dir`` that a student must not see; empty when clean."""
    problems = []
    notebook = release_dir / source_notebook.name
    if not notebook.is_file():
        return [f"{notebook}: missing"]
    nb = nbformat.read(notebook, as_version=4)
    text = "\n".join(cell.source for cell in nb.cells)
    problems += [f"{notebook}: contains {marker!r}" for marker in FORBIDDEN_MARKERS if marker in text]
    secrets = secret_lines(nbformat.read(source_notebook, as_version=4))
    release_lines = {line.strip() for line in text.splitlines()}
    problems += [f"{notebook}: solution or hidden-test line leaked: {line!r}" for line in sorted(secrets & release_lines)]
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count):
            problems.append(f"{notebook}: cell {index} has outputs")
    for path in release_dir.rglob("*"):
        if path == release_dir / cfg.STUDENT_CHECKER.name:  # the students' checker: no secret in it either
            checker = path.read_text()
            problems += [f"{path}: contains {marker!r}" for marker in FORBIDDEN_MARKERS if marker in checker]
            problems += [f"{path}: solution or hidden-test line leaked: {line!r}" for line in sorted(secrets)
                         if line in checker]
        elif path.suffix in {".db", ".py", ".pyc"} or path.name.startswith("gradebook"):
            problems.append(f"{path}: file should not be released")
    return problems


def drift_problems(committed: Path, fresh: Path) -> list[str]:
    """Files that differ between the committed release and a fresh build."""
    problems = []
    committed_files = {p.relative_to(committed) for p in committed.rglob("*") if p.is_file()}
    fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    problems += [f"release/{cfg.ASSIGNMENT_ID}/{p}: not made by the generator" for p in sorted(committed_files - fresh_files)]
    problems += [f"release/{cfg.ASSIGNMENT_ID}/{p}: missing from the committed release" for p in sorted(fresh_files - committed_files)]
    for rel in sorted(committed_files & fresh_files):
        if not filecmp.cmp(committed / rel, fresh / rel, shallow=False):
            where = notebook_difference(committed / rel, fresh / rel) if rel.suffix == ".ipynb" else ""
            problems.append(f"release/{cfg.ASSIGNMENT_ID}/{rel}: differs from what the generator makes today"
                            f"{where}; {FIX}")
    if problems and not any(FIX in p for p in problems):
        problems.append(FIX)
    return problems


FIX = ("fix: run `python -m autograder release` and commit release/ (or undo the edit made by hand in release/: "
       "the source notebook is the one to edit)")


def cell_label(index: int, cell: nbformat.NotebookNode) -> str:
    gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    first = next((line.strip() for line in cell.get("source", "").splitlines() if line.strip()), "")[:60]
    return f"cell {index} ({cell.get('cell_type')}{', ' + gid if gid else ''}: {first!r})"


def notebook_difference(committed: Path, fresh: Path) -> str:
    """Where two notebooks first differ, in words: the cell (index, type, grade id, first line) and what
    differs in it (source, metadata, outputs), or the cell count or the notebook's metadata."""
    try:
        old, new = nbformat.read(committed, as_version=4), nbformat.read(fresh, as_version=4)
    except Exception as error:  # nbformat raises several types for a file that is no notebook
        return f" (the committed one is not a readable notebook: {type(error).__name__})"
    for index, (a, b) in enumerate(zip(old.cells, new.cells)):
        parts = [part for part in ("cell_type", "source", "metadata", "outputs", "attachments")
                 if a.get(part) != b.get(part)]
        if parts:
            return f": {cell_label(index, a)} differs in its {', '.join(parts)} (the generator makes {cell_label(index, b)})"
    if len(old.cells) != len(new.cells):
        return f": {len(old.cells)} cells, the generator makes {len(new.cells)}"
    if old.metadata != new.metadata:
        return ": the notebook's metadata"
    return ": same cells and metadata, different formatting (nbformat version, key order or indentation)"


def release(destination: Path = cfg.RELEASE_DIR) -> Path:
    """Regenerate ``destination/<assignment>`` and check it; raise on a leak."""
    with tempfile.TemporaryDirectory(prefix="w4-release-") as tmp:
        built = build_release(Path(tmp))
        problems = leak_problems(built)
        if problems:
            raise SetupError("the generated release leaks:\n" + "\n".join(problems))
        target = destination / cfg.ASSIGNMENT_ID
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(built, target)
    return target


def check(destination: Path = cfg.RELEASE_DIR) -> list[str]:
    """Leak and drift problems of the committed release; empty when it is clean and current."""
    committed = destination / cfg.ASSIGNMENT_ID
    if not committed.is_dir():
        return [f"{committed}: missing; run `python -m autograder release`"]
    with tempfile.TemporaryDirectory(prefix="w4-release-") as tmp:
        fresh = build_release(Path(tmp))
        return leak_problems(committed) + drift_problems(committed, fresh)
