"""Feedback redaction and per-option credit on small in-memory notebooks."""
from __future__ import annotations

import nbformat
import pytest

import course_config as cfg
from autograder.preprocessors import ShareCredit, redact_notebook


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


# --- ShareCredit: a multiple-choice test's printed share becomes points ---------------------------

def share_cell(*outputs) -> nbformat.NotebookNode:
    cell = graded_test_cell("print(...)", list(outputs))
    cell.metadata["nbgrader"].update(grade_id=sorted(cfg.SHARE_CREDIT)[0], points=2.0)
    return cell


def value_of(cell) -> tuple[float | None, float]:
    from nbgrader.utils import determine_grade

    return determine_grade(cell)


def stdout(text: str):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


@pytest.mark.parametrize("right, points", [(4, 2.0), (3, 1.5), (1, 0.5), (0, 0.0)])
def test_each_option_right_is_worth_a_quarter(right, points):
    cell, _ = ShareCredit().preprocess_cell(share_cell(stdout(f"mcq: {right} of 4 options right\n")), {}, 0)
    assert value_of(cell) == (points, 2.0)


def test_a_value_the_cell_showed_itself_is_dropped():
    forged = nbformat.v4.new_output("execute_result", data={"text/plain": "2.0"}, execution_count=1)
    cell, _ = ShareCredit().preprocess_cell(share_cell(stdout("mcq: 0 of 4 options right\n"), forged), {}, 0)
    assert value_of(cell) == (0.0, 2.0)


def test_a_share_cell_without_its_line_scores_zero_and_says_why():
    cell, _ = ShareCredit().preprocess_cell(share_cell(stdout("mcq: answers are well formed\n")), {}, 0)
    assert value_of(cell) == (0.0, 2.0)  # nbgrader alone would give full points to a cell without output
    assert "result line is missing" in "".join(o.get("text", "") for o in cell.outputs)


def test_an_error_still_scores_zero():
    error = nbformat.v4.new_output("error", ename="AssertionError", evalue="define the variable", traceback=[])
    cell, _ = ShareCredit().preprocess_cell(share_cell(error), {}, 0)
    assert value_of(cell) == (0, 2.0)


def test_other_test_cells_are_left_alone():
    cell = graded_test_cell("print('ok')", [stdout("3 of 4 options right\n")])
    before = nbformat.from_dict(cell)
    after, _ = ShareCredit().preprocess_cell(cell, {}, 0)
    assert after == before
