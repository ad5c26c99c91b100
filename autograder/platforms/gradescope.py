"""Grade on Gradescope: build the autograder zip, and grade one submission inside Gradescope.

Gradescope's contract (https://gradescope-autograders.readthedocs.io/en/latest/specs/): the
zip holds ``setup.sh`` (run once, as root, when Gradescope builds its Ubuntu image) and
``run_autograder`` (run for each submission from ``/autograder``) at its root; it is unpacked
into ``/autograder/source``; the submission is in ``/autograder/submission``, and the grader
must write ``/autograder/results/results.json`` (``autograder/gradescope_schema.json``).

    python -m autograder gradescope-zip --out out/gradescope.zip   # build_zip(); wired in __main__
    python -m autograder.platforms.gradescope [--root /autograder]           # run(): what run_autograder calls

The grading itself is the one of ``grade``: ``Grader(scratch).grade(Submission(...))``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.preprocessors import ClearHiddenTests

import course_config as cfg
from autograder.errors import InputError
from autograder.files import atomic_path, atomic_write
from autograder.grading.grade import Grader, GradeRow, graded_cells, zero_row
from autograder.grading.results import GraderFault
from autograder.notebook_code import is_test_cell
from autograder.grading.submissions import checked_submission, expected_grade_ids, safe_student_id

log = logging.getLogger(__name__)

GRADESCOPE_ROOT = Path("/autograder")  # where Gradescope puts source/, submission/, results/
ROOT_VARIABLE = "GRADESCOPE_ROOT"  # run_autograder reads it, so tests can use a temporary folder
VENV = "/autograder/venv"  # where setup.sh installs the stack and run_autograder runs it
SCHEMA = cfg.ROOT / "autograder" / "gradescope_schema.json"
# the repository paths the grader needs at run time (release/ is not: grading uses source/)
ZIP_FILES = ("course_config.py", "nbgrader_config.py", "requirements.txt", "constraints.txt",
             "deploy/docker/install.sh", cfg.REFERENCE_SUBMISSION.relative_to(cfg.ROOT).as_posix())  # the canary's notebook
ZIP_TREES = ("autograder", "source")
SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints"}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member dates: the same repository gives the same zip bytes
HIDDEN_TESTS = ClearHiddenTests.class_traits()["begin_test_delimeter"].default()

SETUP_SH = f"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image: Python 3.11 if the
# image lacks it, then the pinned stack of requirements.txt in {VENV}, then the checks.
set -euo pipefail
cd /autograder/source
VENV={VENV} bash deploy/docker/install.sh
"""

RUN_AUTOGRADER = f"""#!/usr/bin/env bash
# Gradescope runs this for each submission, from /autograder: grade submission/*.ipynb and
# write results/results.json (autograder/platforms/gradescope.py, run()). {ROOT_VARIABLE} and VENV
# override /autograder and {VENV} (the tests run it in a temporary folder).
set -uo pipefail
ROOT="${{{ROOT_VARIABLE}:-{GRADESCOPE_ROOT}}}"
VENV="${{VENV:-{VENV}}}"
export PATH="$VENV/bin:$PATH"   # nbgrader runs alembic from PATH
(cd "$ROOT/source" && "$VENV/bin/python" -m autograder.platforms.gradescope --root "$ROOT")
status=$?
# A grader that fails writes no results.json and exits non-zero: Gradescope then shows the run
# as failed (the staff regrade it) instead of a score the student did not earn.
if [ $status -ne 0 ]; then
    rm -f "$ROOT/results/results.json"
    echo "the autograder failed (exit $status): no score was given; regrade once it is fixed" >&2
fi
exit $status
"""


# --- The zip ------------------------------------------------------------------------------

def zip_members(root: Path = cfg.ROOT) -> list[tuple[Path, str]]:
    """``(file, name in the zip)`` for the grader's files under ``root``, sorted by name."""
    members = [(root / name, name) for name in ZIP_FILES]
    for tree in ZIP_TREES:
        for path in (root / tree).rglob("*"):
            relative = path.relative_to(root)
            if path.is_file() and not SKIPPED_PARTS & set(relative.parts) and path.suffix != ".pyc":
                members.append((path, relative.as_posix()))
    return sorted(members, key=lambda member: member[1])


def write_member(archive: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    """Add ``data`` as ``name`` with a fixed date; mode 755 for scripts Gradescope executes."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    archive.writestr(info, data)


def build_zip(dest: Path) -> Path:
    """Write Gradescope's autograder zip to ``dest`` (a ``.zip`` path); return ``dest``.

    Reads the repository's grader files (``zip_members``); writes ``setup.sh`` and
    ``run_autograder`` at the zip's root beside them, through a temporary file renamed into
    place. Raises ``ValueError`` if ``dest`` does not end in ``.zip`` or a needed file is missing.
    """
    dest = Path(dest)
    if dest.suffix != ".zip":
        raise InputError(f"{dest}: the Gradescope autograder must be a .zip file; give a path ending in .zip")
    members = zip_members()
    missing = [name for path, name in members if not path.is_file()]
    if missing:
        raise InputError(f"{cfg.ROOT}: {', '.join(missing)} missing; run from a complete checkout")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        write_member(archive, "setup.sh", SETUP_SH.encode(), executable=True)
        write_member(archive, "run_autograder", RUN_AUTOGRADER.encode(), executable=True)
        for path, name in members:
            write_member(archive, name, path.read_bytes(), executable=os.access(path, os.X_OK))
    return dest


# --- One submission, inside Gradescope ---------------------------------------------------------

def find_notebook(submission_dir: Path) -> tuple[Path | None, str | None]:
    """``(the submitted notebook, None)``, or ``(None, why not)`` when there is not exactly one.

    Searches ``submission_dir`` and its subfolders (an upload may keep its folders), skipping
    Jupyter's ``.ipynb_checkpoints`` autosave copies.
    """
    expected = f"{cfg.NOTEBOOK_NAME}.ipynb"
    found = sorted(p for p in submission_dir.rglob("*.ipynb")
                   if p.is_file() and ".ipynb_checkpoints" not in p.parts) if submission_dir.is_dir() else []
    if not found:
        return None, f"No notebook (.ipynb file) was found in your submission: upload your {expected}."
    if len(found) > 1:
        names = ", ".join(p.relative_to(submission_dir).as_posix() for p in found)
        return None, f"{len(found)} notebooks were found in your submission ({names}): upload only your {expected}."
    return found[0], None


def student_id(root: Path) -> str:
    """An id for the scratch gradebook: the first submitter's email (or name) from
    ``submission_metadata.json``, made filename-safe; ``"submission"`` when there is none."""
    try:
        metadata = json.loads((root / "submission_metadata.json").read_text(encoding="utf-8"))
        user = metadata["users"][0]
        raw = str(user.get("email") or user.get("name") or "")
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        log.info("no submitter in %s (%s): using 'submission'", root / "submission_metadata.json", error)
        return "submission"
    return safe_student_id(raw, default="submission")


def cells_with_hidden_tests(source_notebook: Path = cfg.SOURCE_NOTEBOOK) -> set[str]:
    """Grade ids of the test cells that hold hidden tests in the source notebook."""
    nb = nbformat.read(source_notebook, as_version=4)
    return {cell.metadata["nbgrader"]["grade_id"] for cell in nb.cells
            if is_test_cell(cell) and HIDDEN_TESTS in cell.source}


def cell_result(grade_id: str, row: GradeRow, hidden: set[str]) -> dict[str, Any]:
    """One Gradescope test for an autograded cell.

    Visibility: Gradescope never shows ``hidden`` tests to students, and hides their total
    score while any test is hidden; so a cell whose points depend on hidden tests is shown
    ``after_published`` (its result would reveal them while students can still resubmit), and
    a cell with visible tests only is ``visible``.
    """
    points = float(cfg.POINTS[grade_id])
    score = row.cells.get(grade_id) or 0.0
    if row.status != "graded":
        output = "not graded (see the message above the tests)"
    elif grade_id in row.failed:
        output = row.failed[grade_id].removesuffix(": ")  # "NotImplementedError: " has no message
    else:
        output = "passed" if score >= points else "failed"
    return {"name": grade_id, "score": score, "max_score": points, "output": output,
            "visibility": "after_published" if grade_id in hidden else "visible"}


def summary(row: GradeRow, manual_ids: list[str], hidden: set[str], reason: str | None) -> str:
    """The top-level ``output`` shown to the student: score, what is graded by hand, why not graded."""
    manual_points = sum(cfg.POINTS[g] for g in manual_ids)
    lines = [reason] if reason else []
    lines.append(f"Autograded score: {row.score:g} / {row.max_score:g} points "
                 f"for {cfg.NOTEBOOK_NAME}.ipynb ({cfg.ASSIGNMENT_ID}).")
    lines.append(f"The {len(manual_ids)} free-text answers ({', '.join(manual_ids)}; {manual_points:g} points) "
                 "are graded by hand later and are not among the tests below.")
    if hidden:
        lines.append("The results of the tests that include hidden tests are shown when grades are published.")
    return "\n".join(lines)


def results_for(row: GradeRow, reason: str | None = None) -> dict[str, Any]:
    """results.json content for a grade row: total, one test per autograded cell, summary."""
    auto_ids, manual_ids = graded_cells()
    hidden = cells_with_hidden_tests()
    return {"score": row.score,
            "output": summary(row, manual_ids, hidden, reason),
            "stdout_visibility": "hidden",  # nbgrader's log may quote hidden test code
            "tests": [cell_result(gid, row, hidden) for gid in auto_ids]}


def grade_submission(root: Path) -> dict[str, Any]:
    """Grade the one notebook in ``root/submission`` in a scratch course; return results.json content.

    A submission with no notebook, several, or one that cannot be graded (not JSON, another
    assignment's...) gets score 0 and the reason in its output; it is not an exception.
    """
    sid = student_id(root)
    path, problem = find_notebook(root / "submission")
    if path is None:
        auto_ids, manual_ids = graded_cells()
        return results_for(zero_row(sid, problem, auto_ids, manual_ids), reason=problem)
    with tempfile.TemporaryDirectory(prefix="w4-gradescope-") as scratch:
        submission = checked_submission(sid, path, expected_grade_ids(), Path(scratch) / "repaired")
        grader = Grader(Path(scratch), warm=cfg.WARM_KERNELS and not submission.problem)
        try:
            if not submission.problem:
                if cfg.WARM_KERNELS:  # imported once for the canary and the submission
                    grader.start_zygotes()
                grader.run_canary()  # CanaryFailed: this machine cannot grade; no score rather than a wrong one
            row = grader.grade(submission)
        finally:
            grader.close()
    log.info("%s: %s, %s/%g in %.1f s", sid, row.status, row.score, row.max_score, row.seconds)
    if row.grader_fault:
        raise GraderFault(row.status)
    reason = None
    if row.status != "graded":
        reason = f"Your notebook could not be graded: {row.status.removeprefix('error: ')}"
    return results_for(row, reason)


def write_results(results: dict[str, Any], path: Path) -> Path:
    """Write ``results`` as JSON to ``path`` through a temporary file; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, json.dumps(results, indent=2) + "\n")


def run(root: Path = GRADESCOPE_ROOT) -> dict[str, Any] | None:
    """Grade ``root/submission`` and write ``root/results/results.json``; return its content.

    When the grader itself fails (an exception, the canary, a kernel that does not start),
    nothing is written and None is returned: a fault of the grader is never a score. The
    traceback goes to stdout, which only instructors see.
    """
    root = Path(root)
    start = time.perf_counter()
    (root / "results" / "results.json").unlink(missing_ok=True)
    try:
        results = grade_submission(root)
    except Exception:  # any failure of the grader: no results.json, a failed run
        log.exception("grading %s failed; no score was written", root / "submission")
        return None
    results["execution_time"] = round(time.perf_counter() - start)
    write_results(results, root / "results" / "results.json")
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m autograder.platforms.gradescope [--root DIR]``: what ``run_autograder`` calls."""
    parser = argparse.ArgumentParser(prog="python -m autograder.platforms.gradescope", description=run.__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--root", type=Path, default=GRADESCOPE_ROOT, help="Gradescope's /autograder folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    # nbgrader's apps log every file they copy at INFO under "traitlets"; keep their warnings
    quiet = logging.Filter()
    quiet.filter = lambda record: record.name != "traitlets" or record.levelno >= logging.WARNING
    for handler in logging.getLogger().handlers:
        handler.addFilter(quiet)
    results = run(args.root)
    if results is None:
        print("the autograder failed: no results.json was written (see the log above)")
        return 1
    print(f"score {results['score']:g}; results written to {args.root / 'results' / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
