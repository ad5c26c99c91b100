"""nbgrader's configuration, built from ``course_config`` (the only place values live).

``nbgrader_config.py`` at the top of the repository loads this, so the plain ``nbgrader``
command line and ``python -m autograder`` see the same settings.
"""
from __future__ import annotations

import os
from pathlib import Path

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import GetGrades
from traitlets.config import Config

import course_config as cfg
from autograder.errors import InputError
from autograder.grading.preprocessors import (AddFinalSummary, AssignPoints, RedactTestTracebacks, RepairStructure,
                                             ScoreVerdicts, StripGraderOnly, StripHiddenTests)


def nbgrader_config(course_root: Path | None = None) -> Config:
    """nbgrader settings for a course directory at ``course_root`` (default: the repository)."""
    from nbgrader.converters import GenerateAssignment  # imported late: nbgrader is slow to import

    root = Path(course_root or cfg.ROOT)
    c = Config()
    c.CourseDirectory.course_id = cfg.COURSE_ID
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    c.Exchange.root = str(root / ".exchange")  # unused here; the default is a system folder
    # the bundled data and figures are copied into the release and into each autograded folder
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]
    c.GenerateAssignment.preprocessors = [AssignPoints, *GenerateAssignment.class_traits()["preprocessors"].default()]
    # final feedback (autograder/marking/feedback.py): grades and comments from the gradebook, the final score's summary
    # first; no rubric, no hidden test
    c.GenerateFeedback.preprocessors = [GetGrades, AddFinalSummary, StripGraderOnly, StripHiddenTests,
                                        RedactTestTracebacks, CSSHTMLHeaderPreprocessor]
    # every HTML export of a submission (its feedback, the formgrader's page) cleans what the student
    # wrote or displayed: see autograder/sanitize.py
    c.HTMLExporter.sanitize_html = True
    c.HTMLExporter.skip_svg_encoding = False  # SVG in an <img>, where it runs no script
    c.HTMLExporter.filters = {"markdown2html": "autograder.sanitize.markdown2html",
                              "clean_html": "autograder.sanitize.clean_html"}
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import DeduplicateIds, Execute

    from autograder.grading.execute import GuardedExecute

    sanitize = []  # the release's structure back before nbgrader restores the locked cells
    for step in Autograde.class_traits()["sanitize_preprocessors"].default():
        sanitize += [step, RepairStructure] if step is DeduplicateIds else [step]
    c.Autograde.sanitize_preprocessors = sanitize
    steps = []  # the kernel runs the visible tests; the grader judges the hidden ones and writes the verdicts
    for step in Autograde.class_traits()["autograde_preprocessors"].default():
        steps += [StripHiddenTests, GuardedExecute, ScoreVerdicts] if step is Execute else [step]
    c.Autograde.autograde_preprocessors = steps
    c.Execute.timeout = cfg.CELL_TIMEOUT_S
    c.ExecutePreprocessor.timeout = cfg.CELL_TIMEOUT_S
    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    return c


def thread_env(threads: int) -> dict[str, str]:
    """The kernel's CPU threads: one kernel per core share, as oversubscribed OpenMP slows torch down many times."""
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def kernel_environment() -> dict[str, str]:
    """Environment changes for grading kernels under ``course_config.DEVICE_POLICY``."""
    if cfg.DEVICE_POLICY == "cpu":
        return {"CUDA_VISIBLE_DEVICES": ""}
    if cfg.DEVICE_POLICY != "auto":
        raise InputError(f"course_config.DEVICE_POLICY must be 'auto' or 'cpu', not {cfg.DEVICE_POLICY!r}")
    return {}


def venv_on_path() -> None:
    """Put this interpreter's ``bin`` first on PATH: nbgrader runs ``alembic`` from there."""
    bin_dir = str(Path(os.sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
