"""Sharding, merging, parallel workers, resuming after kill -9, and LMS zip input."""
from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest

import course_config as cfg
from autograder.grading.grade import grade, merge_gradebooks
from autograder.grading.shards import merge

EXAMPLES = cfg.EXAMPLES_DIR
pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def final_results(folder) -> list:
    """Per-student result files (not the worker's task and scratch files)."""
    return [p for p in folder.glob("*.json") if p.name.count(".") == 1] if folder.exists() else []


def read_rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return sorted(csv.DictReader(f), key=lambda row: row["student_id"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    for name in ["reference", "blank", "partial_memory_only"]:
        shutil.copy(EXAMPLES / f"{name}.ipynb", folder)
    (folder / "corrupt.ipynb").write_text("{not json")
    return folder


@pytest.fixture(scope="module")
def serial(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    grade(folder, out, canary=False)  # the canary is tested in test_grade.py
    return out


@pytest.mark.platform
def test_merged_shards_equal_the_serial_result(folder, serial, tmp_path):
    shards = []
    for index in range(2):
        shards.append(tmp_path / f"shard-{index}")
        grade(folder, shards[-1], shard=(index, 2), workers=2, canary=False)  # the merge is under test here
    merged = merge(shards, tmp_path / "merged")
    assert read_rows(merged) == read_rows(serial / "grades.csv")
    assert sorted(p.name for p in (tmp_path / "merged" / "feedback").iterdir()) == \
        sorted(p.name for p in (serial / "feedback").iterdir())
    # the shards' gradebooks merge into one class gradebook equal to the serial run's
    assert scores_in(merge_gradebooks(shards, tmp_path / "merged")) == scores_in(serial / "gradebook.db")
    assert (tmp_path / "merged" / "autograded" / "reference" / cfg.ASSIGNMENT_ID / f"{cfg.NOTEBOOK_NAME}.ipynb").is_file()


def scores_in(db) -> dict:
    """student -> (per-cell auto scores, flagged) of a class gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}", cfg.COURSE_ID) as gb:
        found = {}
        for student in gb.students:
            nb = gb.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, student.id)
            found[student.id] = ({g.name: g.auto_score for g in nb.grades}, nb.flagged)
        return found


def test_regrading_the_same_folder_reuses_every_result(folder, serial):
    before = {p.name: p.stat().st_mtime_ns for p in final_results(serial / ".course" / "results")}
    grade(folder, serial)
    after = {p.name: p.stat().st_mtime_ns for p in final_results(serial / ".course" / "results")}
    assert after == before


def test_a_changed_submission_is_graded_again(folder, serial, tmp_path):
    copy = tmp_path / "submissions"
    shutil.copytree(folder, copy)
    shutil.copy(EXAMPLES / "blank.ipynb", copy / "reference.ipynb")  # the student resubmitted a blank
    rows = {row.student_id: row for row in grade(copy, serial, canary=False)}
    assert rows["reference"].score == 0 and rows["partial_memory_only"].score > 0


@pytest.mark.extended  # about 40 s: `make test-all`; resuming from cached results stays in `make test` above
def test_kill_9_mid_run_loses_nothing_already_graded(folder, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "autograder", "grade", str(folder), "--out", str(out)]
    process = subprocess.Popen(command, cwd=cfg.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    results = out / ".course" / "results"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and len(final_results(results)) < 2:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    subprocess.run(["pkill", "-9", "-f", str(out)], capture_output=True)  # its worker and kernel too
    process.wait()
    done = {p.name: p.read_bytes() for p in final_results(results)}
    assert done, "nothing was graded before the kill"
    rows = read_rows(out / "grades.csv")  # the file is whole: written atomically
    assert {row["student_id"] for row in rows} <= {"reference", "blank", "partial_memory_only", "corrupt"}
    grade(folder, out)
    for name, content in done.items():
        assert (results / name).read_bytes() == content, f"{name} was graded again after the kill"
    assert len(read_rows(out / "grades.csv")) == 4


def test_grade_takes_an_lms_zip_export(tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        # the names Canvas's "Download Submissions" gives (the course's LMS): <name>_<user id>_<file id>_<upload>
        z.write(EXAMPLES / "blank.ipynb", "smithalice_1001_5001_W4_Tutorial1.ipynb")
        z.writestr("jonesbob_1002_5002_W4_Tutorial1.ipynb", "{broken")
    rows = {row.student_id: row for row in grade(archive, tmp_path / "out", canary=False)}
    assert rows["1001"].status == "graded" and rows["1001"].score == 0
    assert rows["1002"].status.startswith("error:") and "not valid JSON" in rows["1002"].status
