"""nbgrader preprocessors of this course: one small class, one job each.

They slot into nbgrader's own pipelines (see ``autograder/grading/settings.py``):
``AssignPoints`` runs first in ``generate_assignment``; ``RepairStructure`` among the sanitizing
steps of ``autograde``, before nbgrader restores the locked cells; ``StripHiddenTests`` right
before the execution (the kernel never receives a hidden test) and ``ScoreVerdicts`` right after
it; ``StripGraderOnly``, ``RedactTestTracebacks`` and ``AddFinalSummary`` (the final score's summary) run in
``generate_feedback``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode, from_dict
from nbformat.v4 import new_markdown_cell
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor
from traitlets import Dict, Unicode

import course_config as cfg
from autograder.errors import InputError
from autograder.grading.gradebook import GRADER_ONLY
from autograder.notebook_code import is_test_cell, nbgrader_meta


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
            raise InputError(
                f"graded cells and course_config.POINTS disagree: not in POINTS {sorted(unknown)}, "
                f"not in the notebook {sorted(missing)}")
        for cell in graded:
            cell.metadata.nbgrader["points"] = float(cfg.POINTS[cell.metadata.nbgrader["grade_id"]])
        return nb, resources


class StripHiddenTests(ClearHiddenTests):
    """Remove ``### BEGIN HIDDEN TESTS`` regions from test cells before they are executed.

    nbgrader restores each test cell from the gradebook, hidden tests included; the kernel runs the
    visible tests only, and the grader runs the hidden ones outside it (``autograder/grading/judge.py``).
    nbgrader's ``ClearHiddenTests`` does the same for the release.
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


class ScoreVerdicts(NbGraderPreprocessor):
    """Write each test cell's verdict, as the judge recorded it, as the cell's first output.

    nbgrader scores a test cell by its first error or ``execute_result`` output: the verdict comes
    first, so nothing the kernel printed, displayed or raised after it is ever read as a score. A
    full or partial verdict is an ``execute_result`` holding the points (nbgrader's partial
    credit), a failed one an error with the test's message; a test cell the judge did not reach
    scores 0.
    """

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        verdicts = resources.get("autograder", {}).get("verdicts", {})
        for cell in nb.cells:
            if is_test_cell(cell):
                meta = cell.metadata["nbgrader"]
                cell.outputs.insert(0, verdict_output(verdicts.get(meta["grade_id"]), float(meta["points"])))
        return nb, resources


def verdict_output(verdict: dict | None, points: float) -> NotebookNode:
    """The output that carries a verdict's points."""
    if verdict is None:
        return from_dict({"output_type": "error", "ename": "CellNotJudged", "evalue": "the grader could not judge "
                          "this cell", "traceback": ["CellNotJudged: the grader could not judge this cell"]})
    share = min(1.0, max(0.0, float(verdict["share"])))
    if share == 0:
        message = verdict.get("message") or "a hidden test failed"
        return from_dict({"output_type": "error", "ename": "AssertionError", "evalue": message,
                          "traceback": [f"AssertionError: {message}"]})
    earned = share * points
    text = "The grader's tests passed." if share == 1 else f"{verdict.get('message') or 'Partly right'}."
    return from_dict({"output_type": "execute_result", "execution_count": None, "metadata": {},
                      "data": {"text/plain": repr(earned),
                               "text/markdown": f"**{text}** {earned:g} of {points:g} points."}})


class RepairStructure(NbGraderPreprocessor):
    """Give the submission the release's structure back before nbgrader reads it.

    A cell with the grade id of a release cell gets that cell's nbgrader metadata back (grade,
    solution, locked, points, cell type: a student's edit of them is undone); a cell whose grade id
    the release does not have, or with nbgrader flags but no id, becomes an ordinary cell. Each
    repair is noted in the cell's ``autograder_repaired`` metadata, which the executor turns into a
    note (any such metadata the submission brought is removed first). Duplicated ids are nbgrader's
    ``DeduplicateIds``'s, which runs before.
    """

    release_notebook = Unicode(str(cfg.RELEASE_NOTEBOOK), help="the release notebook students received").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        import nbformat

        release = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]
                   for c in nbformat.read(Path(self.release_notebook), as_version=4).cells
                   if nbgrader_meta(c).get("grade_id")}
        for cell in nb.cells:
            cell.metadata.pop(REPAIRED, None)
            meta = cell.metadata.get("nbgrader")
            if meta is None:
                continue
            gid = meta.get("grade_id") if isinstance(meta, dict) else None
            if not isinstance(gid, str) or gid not in release:
                if isinstance(meta, dict) and any(meta.get(flag) for flag in ("grade", "solution", "locked", "task")):
                    cell.metadata[REPAIRED] = (f"this cell's grading metadata (id {json.dumps(gid)[:80]}) is not the "
                                               "assignment's: it was graded as an ordinary cell")
                cell.metadata.pop("nbgrader")
                continue
            wanted = {k: v for k, v in release[gid].items() if k != "checksum"}
            changed = sorted(k for k in set(meta) | set(wanted) if k != "checksum" and meta.get(k) != wanted.get(k))
            if changed:
                cell.metadata["nbgrader"] = {**wanted, **({"checksum": meta["checksum"]} if "checksum" in meta else {})}
                cell.metadata[REPAIRED] = f"this cell's grading metadata ({', '.join(changed)}) was restored from the assignment"
        return nb, resources


REPAIRED = "autograder_repaired"  # cell metadata: what RepairStructure changed, for the executor's notes


def redact_notebook(nb: NotebookNode) -> NotebookNode:
    """Apply both feedback redactions to a notebook in memory (used by tests and reports)."""
    resources: dict[str, Any] = {}
    for preprocessor in (StripHiddenTests(), RedactTestTracebacks()):
        nb, resources = preprocessor.preprocess(nb, resources)
    return nb


class StripGraderOnly(NbGraderPreprocessor):
    """Remove the graders' rubric cells (``autograder/grading/gradebook.py`` adds them to the class's
    autograded copies for the formgrader) from feedback: students never see a rubric."""

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        nb.cells = [cell for cell in nb.cells if not cell.metadata.get(GRADER_ONLY)]
        return nb, resources


SUMMARY = "w4_final_summary"  # metadata key of the summary cell


class AddFinalSummary(NbGraderPreprocessor):
    """Put the student's final score and how it adds up in a first markdown cell (``summaries``: student
    id -> markdown, set by ``write_final_feedback``; a student without one gets no cell)."""

    summaries = Dict({}, help="student id -> the summary's markdown").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        nb.cells = [cell for cell in nb.cells if not cell.metadata.get(SUMMARY)]  # a forged or older one
        text = self.summaries.get((resources.get("nbgrader") or {}).get("student"))
        if text:
            cell = new_markdown_cell(text)
            cell.metadata[SUMMARY] = True
            nb.cells.insert(0, cell)
        return nb, resources
