"""A kernel that dies is graded again: killed once from outside, the submission keeps its marks.

A kernel can die of the submission (``os._exit``, a crash: ``tests/adversarial``'s
``os_exit_kills_kernel`` dies again the second time and loses the cell) or of the machine (the
host's memory, another grading run that took the same user id). The grader cannot tell which from
the death alone, so, as after a time limit, it grades the notebook a second time and keeps that.
Here the machine's side: a right submission whose kernel is killed from outside, once, while it
runs an answer cell, gets full marks with a note saying why it was graded twice; the reference
graded beside it is graded once, with no note.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

import course_config as cfg
from autograder.grading.grade import grade

sys.path.insert(0, str(cfg.ROOT / "tests" / "adversarial"))
from make_adversarial import filled, with_code  # noqa: E402

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.platform]  # a machine fault: make test-platforms
MARK = "w4-killed-once"  # the kernel's name in /proc while it runs the answer cell (15 characters at most)
NAME_ITSELF = ("import ctypes, time\n"
               f"ctypes.CDLL(None).prctl(15, b'{MARK}', 0, 0, 0)  # PR_SET_NAME: seen from outside\n"
               "time.sleep(3)\n"
               "ctypes.CDLL(None).prctl(15, b'python', 0, 0, 0)")


class KillOnce(threading.Thread):
    """Kill, once, the process named ``MARK`` (as the kernel OOM killer or another run would)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.killed: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.killed is None:
            for entry in Path("/proc").iterdir():
                try:
                    if entry.name.isdigit() and (entry / "comm").read_text().strip() == MARK:
                        os.kill(int(entry.name), signal.SIGKILL)
                        self.killed = int(entry.name)
                        return
                except OSError:
                    continue
            time.sleep(0.05)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    shutil.copy(cfg.REFERENCE_SUBMISSION, folder / "reference.ipynb")
    nbformat.write(with_code(filled(), "ex1_memory", NAME_ITSELF), folder / "killed_once.ipynb")
    out = tmp_path_factory.mktemp("out")
    killer = KillOnce()
    killer.start()
    try:
        rows = grade(folder, out, workers=2, canary=False)
    finally:
        killer.stop.set()
    return {row.student_id: row for row in rows}, killer, out


def test_a_kernel_killed_once_from_outside_costs_no_marks_and_the_feedback_says_why(graded):
    rows, killer, _ = graded
    assert killer.killed is not None, "the kernel was never seen running the answer cell"
    row = rows["killed_once"]
    assert row.status == "graded" and row.score == row.max_score, (row.status, row.cells, row.failed)
    notes = " | ".join(row.notes.get("ex1_memory", []))
    assert "ex1_memory lost the kernel (it died), so the notebook was graded a second time" in notes, row.notes
    assert "died there again" not in notes
    assert "graded a second time" in row.feedback.read_text()


def test_the_submission_graded_beside_it_is_graded_once_with_no_note(graded):
    rows, _, out = graded
    row = rows["reference"]
    assert row.score == row.max_score and row.notes == {}, row.notes
    assert "graded a second time" not in row.feedback.read_text()
    stored = json.loads((out / ".course" / "results" / "reference.json").read_text())
    assert not stored.get("retried") and stored.get("lost", []) == []
