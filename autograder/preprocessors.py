"""nbgrader preprocessors of this course: one small class, one job each.

They slot into nbgrader's own pipelines (see ``autograder/settings.py``):
``AssignPoints`` runs first in ``generate_assignment``; ``ShareCredit`` right after the
execution in ``autograde``; ``StripHiddenTests`` and
``RedactTestTracebacks`` run in ``generate_feedback``, so the HTML a student receives shows the
visible tests and the instructor's assertion messages but no hidden test code.
"""
from __future__ import annotations

from typing import Any

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode, from_dict
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor

import course_config as cfg
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
    """Turn the share a test cell computes into points, for the cells of ``course_config.SHARE_CREDIT``.

    A multiple-choice test ends with the share of options answered right (0 to 1) as its value;
    nbgrader's partial credit reads a test cell's value as points, and only the grader knows the
    points, so this step (right after execution, before nbgrader saves the grades) multiplies
    the share by the cell's points. A value outside 0..1 or not a number scores 0.
    """

    def preprocess_cell(self, cell: NotebookNode, resources: ResourcesDict, index: int) -> tuple[NotebookNode, ResourcesDict]:
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("grade_id") not in cfg.SHARE_CREDIT:
            return cell, resources
        outputs = cell.get("outputs", [])
        results = [o for o in outputs if o.get("output_type") == "execute_result"]
        if not results and not any(o.get("output_type") == "error" for o in outputs):
            # no value and no error: the display was tampered with; nbgrader would give full points
            outputs.append(from_dict({"output_type": "stream", "name": "stdout",
                                      "text": f"{NOTE_PREFIX}the test's result was not displayed: 0 points\n"}))
            results = [from_dict({"output_type": "execute_result", "execution_count": None, "metadata": {},
                                  "data": {"text/plain": "0"}})]
            outputs.append(results[0])
        for output in results:
            text = output.get("data", {}).get("text/plain", "")
            try:
                share = float("".join(text) if isinstance(text, list) else text)
            except ValueError:
                share = -1.0
            points = float(cell.metadata["nbgrader"]["points"])
            output["data"] = {"text/plain": f"{share * points:g}" if 0.0 <= share <= 1.0 else "0"}
        return cell, resources


def redact_notebook(nb: NotebookNode) -> NotebookNode:
    """Apply both feedback redactions to a notebook in memory (used by tests and reports)."""
    resources: dict[str, Any] = {}
    for preprocessor in (StripHiddenTests(), RedactTestTracebacks()):
        nb, resources = preprocessor.preprocess(nb, resources)
    return nb
