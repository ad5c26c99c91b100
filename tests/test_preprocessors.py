"""Feedback redaction on small in-memory notebooks."""
from __future__ import annotations

import nbformat

from autograder.preprocessors import redact_notebook


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
