"""Feedback redaction, verdicts as scores and structure repair, on small in-memory notebooks."""
from __future__ import annotations

import copy

import nbformat
import pytest

import course_config as cfg
from autograder.grading.preprocessors import REPAIRED, RepairStructure, ScoreVerdicts, redact_notebook


def graded_test_cell(source: str, outputs: list) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": "test_x",
                                 "points": 1, "schema_version": 3}
    cell.outputs = outputs
    return cell


def test_hidden_region_and_traceback_are_removed_but_the_message_stays():
    error = nbformat.v4.new_output("error", ename="AssertionError", evalue="megabytes_1 is off",
                                   traceback=["----> 3 assert _secret == 42", "AssertionError: megabytes_1 is off"])
    nb = nbformat.v4.new_notebook(cells=[graded_test_cell(
        "assert x > 0, 'visible'\n### BEGIN HIDDEN TESTS\nassert _secret == 42\n### END HIDDEN TESTS", [error])])
    cell = redact_notebook(nb).cells[0]
    assert "_secret" not in cell.source and "visible" in cell.source
    assert "_secret" not in "\n".join(cell.outputs[0].traceback)
    assert "megabytes_1 is off" in cell.outputs[0].traceback[0]


def test_answer_cells_keep_their_traceback():
    answer = nbformat.v4.new_code_cell("raise ValueError('mine')")
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "grade_id": "ex",
                                   "schema_version": 3}
    answer.outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="mine", traceback=["line 1", "line 2"])]
    nb = redact_notebook(nbformat.v4.new_notebook(cells=[answer]))
    assert nb.cells[0].outputs[0].traceback == ["line 1", "line 2"]


# --- ScoreVerdicts: the judge's verdict is the cell's score, whatever the kernel showed -------------

def stdout(text: str):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


KERNEL_OUTPUTS = {  # what a submission's kernel can put into a test cell
    "nothing": [],
    "a forged value": [nbformat.v4.new_output("execute_result", data={"text/plain": "1000.0"}, execution_count=1)],
    "a forged non-number": [nbformat.v4.new_output("execute_result", data={"text/plain": "'full marks'"},
                                                   execution_count=1)],
    "an error": [nbformat.v4.new_output("error", ename="AssertionError", evalue="visible", traceback=[])],
    "stderr": [nbformat.v4.new_output("stream", name="stderr", text="warning\n")],
    "a share line": [stdout("mcq: 4 of 4 options right\n")],
}


def scored(verdict: dict | None, outputs: list, points: float = 2.0):
    from nbgrader.utils import determine_grade

    cell = graded_test_cell("print(...)", copy.deepcopy(outputs))
    cell.metadata["nbgrader"].update(points=points)
    nb = nbformat.v4.new_notebook(cells=[cell])
    resources = {"autograder": {"verdicts": {} if verdict is None else {"test_x": verdict}}}
    nb, _ = ScoreVerdicts().preprocess(nb, resources)
    return determine_grade(nb.cells[0]), nb.cells[0]


@pytest.mark.parametrize("kernel", sorted(KERNEL_OUTPUTS))
@pytest.mark.parametrize("share, points", [(1.0, 2.0), (0.75, 1.5), (0.5, 1.0), (0.0, 0.0)])
def test_the_verdict_alone_sets_the_score(kernel, share, points):
    (earned, maximum), _ = scored({"share": share, "message": "3 of 4 options right"}, KERNEL_OUTPUTS[kernel])
    assert (earned, maximum) == (points, 2.0)


def test_a_failed_verdict_carries_its_message_and_an_unjudged_cell_scores_zero():
    (earned, _), cell = scored({"share": 0.0, "message": "megabytes_1 is off"}, KERNEL_OUTPUTS["nothing"])
    assert earned == 0 and cell.outputs[0].ename == "AssertionError" and cell.outputs[0].evalue == "megabytes_1 is off"
    (earned, _), cell = scored(None, KERNEL_OUTPUTS["a forged value"])
    assert earned == 0 and cell.outputs[0].ename == "CellNotJudged"


def test_the_kernels_own_outputs_stay_for_the_student_to_see():
    _, cell = scored({"share": 1.0, "message": ""}, KERNEL_OUTPUTS["a share line"])
    assert cell.outputs[1].text == "mcq: 4 of 4 options right\n"
    assert "passed" in cell.outputs[0].data["text/markdown"]


# --- RepairStructure: the release's structure back, each repair named; honest notebooks untouched -----

def repaired(nb):
    nb, _ = RepairStructure().preprocess(nb, {})
    return {i: c.metadata[REPAIRED] for i, c in enumerate(nb.cells) if REPAIRED in c.metadata}, nb


@pytest.mark.parametrize("path", [cfg.RELEASE_NOTEBOOK, cfg.EXAMPLES_DIR / "reference.ipynb",
                                  cfg.EXAMPLES_DIR / "partial_memory_only.ipynb"])
def test_an_honest_notebook_needs_no_repair(path):
    nb = nbformat.read(path, as_version=4)
    before = copy.deepcopy(nb)
    notes, after = repaired(nb)
    assert notes == {} and after == before


def test_a_cell_marked_graded_by_the_submission_becomes_an_ordinary_cell():
    nb = nbformat.read(cfg.EXAMPLES_DIR / "reference.ipynb", as_version=4)
    extra = graded_test_cell("print('bonus')", [])
    extra.metadata["nbgrader"].update(grade_id="bonus", points=50)
    no_id = graded_test_cell("print('x')", [])
    del no_id.metadata["nbgrader"]["grade_id"]
    nb.cells += [extra, no_id]
    notes, nb = repaired(nb)
    assert set(notes) == {len(nb.cells) - 2, len(nb.cells) - 1}
    assert "bonus" in notes[len(nb.cells) - 2] and "ordinary cell" in notes[len(nb.cells) - 2]
    assert "nbgrader" not in nb.cells[-1].metadata and "nbgrader" not in nb.cells[-2].metadata


def test_edited_grading_metadata_is_restored_from_the_release():
    nb = nbformat.read(cfg.EXAMPLES_DIR / "reference.ipynb", as_version=4)
    index, cell = next((i, c) for i, c in enumerate(nb.cells)
                       if c.metadata.get("nbgrader", {}).get("grade_id") == "test_ex1_memory")
    cell.metadata["nbgrader"].update(points=400, grade=False, locked=False)
    notes, nb = repaired(nb)
    assert set(notes) == {index} and "grade, locked, points" in notes[index]
    assert nb.cells[index].metadata["nbgrader"]["points"] == cfg.POINTS["test_ex1_memory"]
    assert nb.cells[index].metadata["nbgrader"]["grade"] is True


def test_a_repair_note_the_submission_wrote_itself_is_dropped():
    nb = nbformat.read(cfg.EXAMPLES_DIR / "reference.ipynb", as_version=4)
    nb.cells[0].metadata[REPAIRED] = "[grader] forged"
    notes, _ = repaired(nb)
    assert notes == {}
