"""The run's result store (``autograder/grading/store.py``) and the grade rows it turns into, on files only."""
from __future__ import annotations

import csv
import json

import pytest

import course_config as cfg
from autograder.grading import results
from autograder.grading.grade import write_grades
from autograder.grading.store import ResultStore, sha256
from autograder.grading.submissions import Submission

pytestmark = pytest.mark.fast
AUTO, MANUAL = results.graded_cells()


@pytest.fixture
def store(tmp_path):
    made = ResultStore(tmp_path / "out")
    made.out.mkdir()
    made.prepare()
    return made


@pytest.fixture
def submission(tmp_path):
    path = tmp_path / "alice.ipynb"
    path.write_text('{"cells": []}')
    return Submission("alice", path)


def keep(store, submission, **result):
    store.save(store.folder(), results.WorkerResult("alice", submission_sha256=sha256(submission.path), **result))


def test_nothing_stored_is_graded(store, submission):
    assert store.stored(submission, "v1") == (None, False)


def test_the_same_notebook_by_the_same_grader_is_reused(store, submission):
    keep(store, submission, grader="v1", cells={"a": 1})
    stored, stale = store.stored(submission, "v1")
    assert stored.cells == {"a": 1} and not stale


def test_another_grader_makes_the_result_stale(store, submission):
    keep(store, submission, grader="v0", cells={})
    assert store.stored(submission, "v1") == (None, True)


def test_an_edited_notebook_is_graded_again_and_is_not_stale(store, submission):
    keep(store, submission, grader="v1", cells={})
    submission.path.write_text('{"cells": [1]}')
    assert store.stored(submission, "v1") == (None, False)


def test_a_grader_fault_is_never_reused(store, submission):
    keep(store, submission, grader="v1", grader_error="the disk is full")
    assert store.stored(submission, "v1") == (None, False)


def test_a_damaged_result_file_is_graded_again(store, submission):
    (store.results / "alice.json").write_text("{half")
    assert store.stored(submission, "v1") == (None, False)


def test_a_file_nobody_owns_is_never_looked_up(store, submission, tmp_path):
    keep(store, submission, grader="v1", cells={})
    nobody = Submission("alice", submission.path, fault="no student id in the name")
    assert store.stored(nobody, "v1") == (None, False)


def test_held_results_move_into_place_on_release_and_vanish_on_drop(store):
    held = store.folder(held=True)
    for suffix in ("json", "log", "html", "ipynb"):
        (held / f"bob.{suffix}").write_text(suffix)
        (held / f"carol.{suffix}").write_text(suffix)
    store.release_held("bob")
    assert (store.results / "bob.json").read_text() == "json" and (store.results / "bob.log").exists()
    assert (store.feedback / "bob.html").exists() and (store.autograded / "bob.ipynb").exists()
    store.drop_held()
    assert not store.held.exists() and not (store.results / "carol.json").exists()


def test_the_worker_outputs_are_kept_where_graded_ones_go(store, tmp_path):
    course = tmp_path / "students" / "dan"
    notebook = course / "autograded" / "dan" / cfg.ASSIGNMENT_ID / f"{cfg.NOTEBOOK_NAME}.ipynb"
    notebook.parent.mkdir(parents=True)
    notebook.write_text("{}")
    (course / "page.html").write_text("<p>")
    result = results.WorkerResult("dan", feedback_html=str(course / "page.html"))
    store.keep_outputs("dan", course, result, store.folder())
    assert result.to_json() == results.WorkerResult("dan", feedback=str(store.feedback / "dan.html")).to_json()
    assert "feedback_html" not in result.to_json()
    assert (store.feedback / "dan.html").read_text() == "<p>" and (store.autograded / "dan.ipynb").exists()
    assert not course.exists()


def test_a_result_reads_back_as_written_and_a_file_of_another_kind_is_no_result(tmp_path):
    written = results.WorkerResult("alice", cells={"test_a": 2.0}, failed={"test_b": "AssertionError: x"},
                                   notes={"test_b": ["a note"]}, timeouts=["test_b"], retried=True, seconds=3.5,
                                   grader="v1", submission_sha256="ab", device="cpu")
    written.write(tmp_path / "alice.json")
    assert results.WorkerResult.read(tmp_path / "alice.json") == written
    assert "grader_error" not in json.loads((tmp_path / "alice.json").read_text())  # None: left out of the file
    older = {**written.to_json(), "a_key_of_an_older_grader": 1}
    assert results.WorkerResult.from_json(older) == written
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError):
        results.WorkerResult.read(tmp_path / "list.json")


def test_a_row_comes_from_each_kind_of_result():
    graded = results.row_from_result(results.WorkerResult("a", cells={AUTO[0]: 2.0}, device="cpu"), AUTO, MANUAL,
                                     "sandbox")
    assert graded.status == "graded" and graded.score == 2.0 and graded.isolation == "sandbox"
    assert graded.cells[MANUAL[0]] is None and graded.device == "cpu"
    zero = results.row_from_result(results.WorkerResult("b", error="not a notebook", isolation="NONE: x"), AUTO,
                                   MANUAL, "sandbox")
    assert zero.score == 0 and zero.status == results.STUDENT_ERROR + "not a notebook" and zero.isolation == "NONE: x"
    fault = results.row_from_result(results.WorkerResult("c", grader_error="disk full"), AUTO, MANUAL, "sandbox")
    assert fault.score is None and fault.grader_fault


def test_write_json_replaces_the_file_whole(tmp_path):
    path = tmp_path / "r.json"
    results.write_json(path, {"b": 1, "a": [1]})
    results.write_json(path, {"c": 2})
    assert json.loads(path.read_text()) == {"c": 2} and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_task_survives_its_file(tmp_path):
    task = results.Task("alice", "/s/a.ipynb", "/c", "/t", "/r.json", {"x": 9.0}, 60.0, None, 2, None)
    assert results.read_task(results.write_task(tmp_path / "t.json", task)) == task


def test_zero_and_fault_rows_differ_in_whether_a_score_stands():
    zero = results.zero_row("alice", "not a notebook", AUTO, MANUAL)
    fault = results.fault_row("bob", "the kernel did not start", AUTO, MANUAL)
    assert zero.score == 0 and zero.status == results.STUDENT_ERROR + "not a notebook" and not zero.grader_fault
    assert fault.score is None and fault.status == results.GRADER_ERROR + "the kernel did not start" and fault.grader_fault
    assert all(fault.cells[g] is None for g in AUTO) and all(zero.cells[g] == 0 for g in AUTO)


def test_grades_csv_sorts_rows_and_leaves_a_faults_scores_empty(tmp_path):
    rows = [results.fault_row("bob", "kernel died", AUTO, MANUAL), results.zero_row("alice", "empty", AUTO, MANUAL)]
    path = tmp_path / "grades.csv"
    write_grades(rows, path, AUTO, MANUAL)
    header, alice, bob = list(csv.reader(path.open()))
    assert header[:3] == ["student_id", "autograded_score", "autograded_max"] and header[3:3 + len(AUTO)] == AUTO
    assert alice[:2] == ["alice", "0"] and bob[:2] == ["bob", ""] and bob[3] == ""
    assert bob[header.index("status")] == results.GRADER_ERROR + "kernel died"
    assert [p.name for p in tmp_path.iterdir()] == ["grades.csv"]  # no temporary file left
