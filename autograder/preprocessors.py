"""nbgrader preprocessors of this course: one small class, one job each.

They slot into nbgrader's own pipelines (see ``autograder/settings.py``):
``AssignPoints`` runs first in ``generate_assignment``; ``ShareCredit`` right after the
execution in ``autograde``; ``StripHiddenTests`` and
``RedactTestTracebacks`` run in ``generate_feedback``, so the HTML a student receives shows the
visible tests and the instructor's assertion messages but no hidden test code.
"""
from __future__ import annotations

import re
from typing import Any

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode, from_dict
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor

import course_config as cfg
from autograder.gradebook import GRADER_ONLY
from autograder.results import NOTE_PREFIX


class AssignPoints(NbGraderPreprocessor):
    """Set each graded cell's points from ``course_config.POINTS``.

    The config is the one source of the points; a graded cell it does not list, or a listed
    id missing from the notebook, is an error naming the id, so the two cannot drift apart.
    """

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        graded = [cell for cell in nb.cells if utils.is_grade(cell)]
        ids = {cell.metadata.nbgrader["grade_id"] for cell in graded}
        unknown, missing = ids - set(cfg.POINTS), set(cfg.POINTS) - ids
        if unknown or missing:
            raise ValueError(
                f"graded cells and course_config.POINTS disagree: not in POINTS {sorted(unknown)}, "
                f"not in the notebook {sorted(missing)}")
        for cell in graded:
            cell.metadata.nbgrader["points"] = float(cfg.POINTS[cell.metadata.nbgrader["grade_id"]])
        return nb, resources


class StripHiddenTests(ClearHiddenTests):
    """Remove ``### BEGIN HIDDEN TESTS`` regions from test cells in feedback.

    nbgrader's ``ClearHiddenTests`` does this for the release; feedback is built from the
    autograded notebook, whose test cells were restored *with* their hidden tests.
    """

    enforce_metadata = False


class RedactTestTracebacks(NbGraderPreprocessor):
    """Replace a failed test cell's traceback by its error type and message.

    A traceback quotes the source lines around the failing assertion, hidden ones included;
    the message is the one the instructor wrote for the student.
    """

    def preprocess_cell(self, cell: NotebookNode, resources: ResourcesDict, index: int) -> tuple[NotebookNode, ResourcesDict]:
        if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}",
                                           "(the test code is not shown)"]
        return cell, resources


class ShareCredit(NbGraderPreprocessor):
    """Give the cells of ``course_config.SHARE_CREDIT`` the share of their points their test printed.

    A multiple-choice test prints ``<question>: K of N options right``; each option is worth
    1/N of the cell's points, which only the grader knows. Right after execution (before nbgrader
    saves the grades) this step reads the last such line of the test cell's own output and sets
    the cell's value to ``K / N x points``, which nbgrader takes as partial credit; a value the
    cell showed itself is dropped. A test cell without the line and without an error scores 0
    (its output was tampered with), with a note saying so.
    """

    LINE = re.compile(r"(\d+) of (\d+) options right")

    def preprocess_cell(self, cell: NotebookNode, resources: ResourcesDict, index: int) -> tuple[NotebookNode, ResourcesDict]:
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("grade_id") not in cfg.SHARE_CREDIT:
            return cell, resources
        outputs = [o for o in cell.get("outputs", []) if o.get("output_type") != "execute_result"]
        if any(o.get("output_type") == "error" for o in outputs):
            cell.outputs = outputs  # nbgrader gives 0 for the error
            return cell, resources
        stdout = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stdout")
        found = self.LINE.findall(stdout)
        points = float(cell.metadata["nbgrader"]["points"])
        right, total = map(int, found[-1]) if found else (0, 1)
        if not found or not 0 <= right <= total or total == 0:
            outputs.append(from_dict({"output_type": "stream", "name": "stdout",
                                      "text": f"{NOTE_PREFIX}the test's result line is missing: 0 points\n"}))
            right, total = 0, 1
        outputs.append(from_dict({"output_type": "execute_result", "execution_count": None, "metadata": {},
                                  "data": {"text/plain": f"{right / total * points:g}"}}))
        cell.outputs = outputs
        return cell, resources


def redact_notebook(nb: NotebookNode) -> NotebookNode:
    """Apply both feedback redactions to a notebook in memory (used by tests and reports)."""
    resources: dict[str, Any] = {}
    for preprocessor in (StripHiddenTests(), RedactTestTracebacks()):
        nb, resources = preprocessor.preprocess(nb, resources)
    return nb


class StripGraderOnly(NbGraderPreprocessor):
    """Remove the graders' rubric cells (``autograder/gradebook.py`` adds them to the class's
    autograded copies for the formgrader) from feedback: students never see a rubric."""

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        nb.cells = [cell for cell in nb.cells if not cell.metadata.get(GRADER_ONLY)]
        return nb, resources
