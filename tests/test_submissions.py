"""Finding submissions and recognising notebooks that cannot be graded (no kernel needed)."""
from __future__ import annotations

import shutil

import nbformat
import pytest

import course_config as cfg
from autograder.grading.submissions import (SubmissionsError, expected_grade_ids, extract_zip, find_submissions,
                                    notebook_problem)

IDS = expected_grade_ids()


def write(path, text: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize("content, reason", [
    ('{"cells": [', "not valid JSON (line 1"),
    (b'{"cells": "\xff\xfe"}', "not UTF-8"),
    ('{"hello": 1}', "not a Jupyter notebook"),
])
def test_unreadable_notebooks_get_a_reason(tmp_path, content, reason):
    assert reason in notebook_problem(write(tmp_path / "alice.ipynb", content), IDS)


def test_a_giant_notebook_is_refused_before_parsing(tmp_path):
    nb = nbformat.read(cfg.RELEASE_NOTEBOOK, as_version=4)
    nb.cells[0].source += "x" * (cfg.MAX_SUBMISSION_MB * 10**6)
    nbformat.write(nb, tmp_path / "dave.ipynb")
    assert "over the" in notebook_problem(tmp_path / "dave.ipynb", IDS)


def test_foreign_notebook_is_recognised(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('week 3')")])
    nbformat.write(nb, tmp_path / "bob.ipynb")
    assert "no graded cell of w4_optimization" in notebook_problem(tmp_path / "bob.ipynb", IDS)


def test_duplicated_grade_ids_are_recognised(tmp_path):
    nb = nbformat.read(cfg.RELEASE_NOTEBOOK, as_version=4)
    graded = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
    copy = nbformat.from_dict(dict(graded))
    copy["id"] = "duplicate-cell"
    nb.cells.append(copy)
    nbformat.write(nb, tmp_path / "carol.ipynb")
    assert "more than once" in notebook_problem(tmp_path / "carol.ipynb", IDS)


def test_the_release_itself_is_gradable():
    assert notebook_problem(cfg.RELEASE_NOTEBOOK, IDS) is None


def test_both_layouts_are_found(tmp_path):
    flat = tmp_path / "flat"
    shutil.copy(cfg.RELEASE_NOTEBOOK, write(flat / "alice.ipynb", ""))
    assert [(s.student_id, s.problem) for s in find_submissions(flat)] == [("alice", None)]
    tree = tmp_path / "submitted"
    target = tree / "bob" / cfg.ASSIGNMENT_ID / f"{cfg.NOTEBOOK_NAME}.ipynb"
    shutil.copy(cfg.RELEASE_NOTEBOOK, write(target, ""))
    assert [s.student_id for s in find_submissions(tree)] == ["bob"]


def test_folder_problems_are_errors_with_the_path(tmp_path):
    with pytest.raises(SubmissionsError, match="not a folder"):
        find_submissions(tmp_path / "missing")
    with pytest.raises(SubmissionsError, match="no submissions found"):
        find_submissions(tmp_path)


def test_a_file_name_that_is_no_student_id_becomes_a_row_with_a_reason(tmp_path):
    shutil.copy(cfg.RELEASE_NOTEBOOK, write(tmp_path / "bad id!.ipynb", ""))
    [submission] = find_submissions(tmp_path)
    assert submission.student_id == "bad_id" and "not a usable student id" in submission.problem


def lms_zip(path, members: dict[str, bytes]):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_zip_export_maps_file_names_to_students_and_keeps_the_latest_attempt(tmp_path, monkeypatch):
    monkeypatch.setattr(cfg, "LMS", "blackboard")  # the names of nbgrader's zip_collect example are Blackboard's
    release = cfg.RELEASE_NOTEBOOK.read_bytes()
    archive = lms_zip(tmp_path / "export.zip", {
        "w4_alice_attempt_2026-11-20-10-00-00_W4_Tutorial1.ipynb": b"old",
        "w4_alice_attempt_2026-11-21-09-00-00_W4_Tutorial1.ipynb": release,
        "w4_bob_attempt_2026-11-20-12-00-00_W4_Tutorial1.ipynb": release,
        "../../evil_attempt_2026-11-20-12-00-00_x.ipynb": release,
        "notes.txt": b"ignored",
        "somebody.ipynb": release,
    })
    folder = extract_zip(archive, tmp_path / "unzipped")
    rows = {s.student_id: s for s in find_submissions(folder)}
    assert rows["alice"].problem is None and rows["alice"].path.read_bytes() == release
    assert rows["bob"].problem is None
    assert any("evil" in k for k in rows) and not (tmp_path / "evil_attempt_2026-11-20-12-00-00_x.ipynb").exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(rows)
    # the latest attempt's time travels as nbgrader's timestamp.txt, for the late policy
    assert rows["alice"].submitted_at == "2026-11-21-09-00-00"
    assert rows["unmatched-somebody"].submitted_at is None
    # whose it is, the grader cannot tell: its fault (no score), never the student's
    assert rows["unmatched-somebody"].problem is None and "'somebody.ipynb' in the zip" in rows["unmatched-somebody"].fault


def test_a_broken_zip_is_an_error_naming_it(tmp_path):
    (tmp_path / "export.zip").write_bytes(b"PK not really")
    with pytest.raises(SubmissionsError, match="export.zip: not a readable zip"):
        extract_zip(tmp_path / "export.zip", tmp_path / "unzipped")


def test_two_files_for_one_student_id_stop_the_run_naming_both(tmp_path):
    for name in ("alice.ipynb", "alice~.ipynb", "bob.ipynb"):
        shutil.copy(cfg.RELEASE_NOTEBOOK, write(tmp_path / "flat" / name, ""))
    with pytest.raises(SubmissionsError) as error:
        find_submissions(tmp_path / "flat")
    message = str(error.value)
    assert "student id 'alice': alice.ipynb, alice~.ipynb" in message and "bob" not in message.split("\n")[1]
    assert "none of them was graded" in message and "rename or remove" in message


def test_ids_that_differ_only_in_case_collide_in_a_submitted_tree(tmp_path):
    for student in ("Carol", "carol", "dave"):
        shutil.copy(cfg.RELEASE_NOTEBOOK, write(tmp_path / student / cfg.ASSIGNMENT_ID / f"{cfg.NOTEBOOK_NAME}.ipynb", ""))
    with pytest.raises(SubmissionsError, match=r"student id 'Carol / carol': Carol/w4_optimization/W4_Tutorial1.ipynb, "
                                               r"carol/w4_optimization/W4_Tutorial1.ipynb"):
        find_submissions(tmp_path)


def test_distinct_ids_and_one_bad_name_are_not_a_collision(tmp_path):
    for name in ("alice.ipynb", "alice.2.ipynb", "bad id!.ipynb"):
        shutil.copy(cfg.RELEASE_NOTEBOOK, write(tmp_path / name, ""))
    assert sorted(s.student_id for s in find_submissions(tmp_path)) == ["alice", "alice.2", "bad_id"]


def test_the_grade_command_refuses_a_colliding_folder_before_grading(tmp_path):
    import subprocess
    import sys

    for name in ("alice.ipynb", "alice~.ipynb"):
        shutil.copy(cfg.RELEASE_NOTEBOOK, write(tmp_path / "in" / name, ""))
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(tmp_path / "in"), "--out", str(tmp_path / "out")],
                          cwd=cfg.ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "alice.ipynb, alice~.ipynb" in done.stderr and not (tmp_path / "out" / "grades.csv").exists()


def test_unmatched_zip_members_whose_names_clean_alike_each_get_a_row(tmp_path, monkeypatch):
    monkeypatch.setattr(cfg, "LMS", "blackboard")
    release = cfg.RELEASE_NOTEBOOK.read_bytes()
    archive = lms_zip(tmp_path / "export.zip", {"my work!.ipynb": release, "my work?.ipynb": release,
                                                  "w4_erin_attempt_2026-11-20-10-00-00_W4_Tutorial1.ipynb": release})
    rows = {s.student_id: s for s in find_submissions(extract_zip(archive, tmp_path / "unzipped"))}
    assert sorted(rows) == ["erin", "unmatched-my_work", "unmatched-my_work-2"]
    assert all("is not a name of course_config.LMS = 'blackboard'" in rows[k].fault for k in rows
               if k.startswith("unmatched-"))


def notebook_with_answer(path, text: str):
    """The reference with ``text`` as the answer of q_better_loss, written as JSON that escapes every non-ASCII character."""
    import json

    nb = json.loads(cfg.REFERENCE_SUBMISSION.read_text())
    cell = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "q_better_loss")
    cell["source"] = text
    return write(path, json.dumps(nb, ensure_ascii=True))


def test_text_no_file_can_hold_is_repaired_in_a_copy_that_is_graded(tmp_path):
    from autograder.grading.submissions import read_notebook

    original = notebook_with_answer(tmp_path / "in" / "mallory.ipynb", "lone \ud800 surrogate, NUL \x00, right-to-left \u202e ok")
    [submission] = find_submissions(tmp_path / "in", repaired_dir=tmp_path / "repaired")
    assert submission.problem is None and submission.repaired == 2
    assert submission.path == tmp_path / "repaired" / "mallory.ipynb" and original.read_bytes().isascii()  # input untouched
    nb = nbformat.read(submission.path, as_version=4)  # UTF-8 a writer can write again
    nbformat.writes(nb).encode("utf-8")
    answer = next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q_better_loss")
    assert answer == "lone \ufffd surrogate, NUL \ufffd, right-to-left \u202e ok"  # bidi text is kept
    assert read_notebook(original).cells == nb.cells  # the reports read the original the same way
    # fixed and submitted again: the clean file is graded, the old repaired copy goes
    notebook_with_answer(original, "fixed")
    [submission] = find_submissions(tmp_path / "in", repaired_dir=tmp_path / "repaired")
    assert submission.path == original and submission.repaired == 0
    assert list((tmp_path / "repaired").glob("*.ipynb")) == []


def test_a_file_name_no_file_can_hold_still_gives_a_storable_reason(tmp_path):
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.ipynb"), "wb") as f:  # Latin-1 bytes: not UTF-8
        f.write(cfg.RELEASE_NOTEBOOK.read_bytes())
    [submission] = find_submissions(folder)
    assert submission.student_id == "caf" and "not a usable student id" in submission.problem
    submission.problem.encode("utf-8")
