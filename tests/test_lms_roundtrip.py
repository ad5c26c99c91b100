"""The LMS round trip as a TA lives it, once per LMS: its download in, final feedback out, grades uploaded.

For Canvas, Moodle and Blackboard, a zip named exactly as that LMS names its submissions download
(``tests/lms/<lms>/download.csv``: accents, spaces, hyphens, Canvas's ``LATE`` and ``-1``, Moodle's
folders, Blackboard's attempts, an upload named with another student's fields and one with a fake
on-time stamp) is graded once; then, through the command line as a TA runs it with that LMS set,
``manual-import`` loads the hand grades, ``feedback`` writes each student's final page and
``export --roster`` writes the upload from that LMS's own gradebook export, which must equal the
golden file ``tests/lms/<lms>/upload.csv`` (Canvas: its header with the assignment id and its
"Points Possible" row; Moodle: its grading worksheet with the grades; Blackboard: its quoted Grade
Center file with the column id). The canary is left out (``tests/test_grade.py`` tests it): each
run grades three notebooks.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

import course_config as cfg
from autograder.marking import export
from autograder.grading.grade import grade
from autograder.lms import LMS_FORMATS
from autograder.marking.manual import write_manual_sheet
from tests.lms_downloads import FIXTURES, download_zip, expected_students

pytestmark = [pytest.mark.kernel, pytest.mark.slow]
EXPECTED = json.loads((cfg.EXAMPLES_DIR / "expected.json").read_text())
TIMES = {"canvas": FIXTURES / "canvas" / "submissions.json",  # Canvas's submissions API: submitted_at
         "moodle": FIXTURES / "moodle" / "roster.csv"}  # Moodle's worksheet: Last modified (submission)
COMMENT = "Convex in lateness, with the reason: full marks."
PRELUDE = ("import sys, course_config; course_config.LMS = sys.argv.pop(1); "
           "from autograder.__main__ import main; sys.exit(main(sys.argv[1:]))")


def cli(lms: str, *args: object, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m autograder ARGS`` with ``course_config.LMS = lms``, as a course of that LMS sets it."""
    return subprocess.run([sys.executable, "-c", PRELUDE, lms, *map(str, args)], cwd=cfg.ROOT, capture_output=True,
                          text=True, timeout=timeout)


def fill(sheet: Path, best: str) -> Path:
    """The manual sheet filled in: full points for ``best``'s answers (one with a comment), half for the others."""
    with open(sheet, newline="", encoding="utf-8") as f:
        lines = list(csv.DictReader(f))
    for line in lines:
        full = float(line["max_points"])
        line["points"] = f"{full if line['student_id'] == best else full / 2:g}"
        if line["student_id"] == best and line["question"] == "q_better_loss":
            line["comment"] = COMMENT
    filled = sheet.with_name("filled.csv")
    with open(filled, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(lines[0]))
        writer.writeheader()
        writer.writerows(lines)
    return filled


@pytest.fixture(scope="module", params=sorted(LMS_FORMATS))
def class_run(request, tmp_path_factory):
    lms = request.param
    base = tmp_path_factory.mktemp(lms)
    archive = download_zip(lms, base / f"{lms} download.zip")
    out = base / "class"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cfg, "LMS", lms)
        rows = grade(archive, out, workers=2, canary=False)
    best = next(s for s, notebook in expected_students(lms).items() if notebook == "reference")
    _, sheet = write_manual_sheet(out, base / "sheets")
    times = ["--times", TIMES[lms]] if lms in TIMES else []
    steps = {"manual-import": cli(lms, "manual-import", fill(sheet, best), "--run", out),
             "feedback": cli(lms, "feedback", out, *times),
             "export": cli(lms, "export", out, "--out", base / "upload.csv", "--roster", FIXTURES / lms / "roster.csv",
                           *times)}
    return {"lms": lms, "base": base, "zip": archive, "out": out, "rows": rows, "best": best, "steps": steps,
            "upload": base / "upload.csv"}


def test_an_lms_download_graded_graded_by_hand_given_feedback_and_uploaded(class_run):
    lms, out = class_run["lms"], class_run["out"]
    expected = expected_students(lms)
    rows = {row.student_id: row for row in class_run["rows"]}
    assert sorted(rows) == sorted(expected)
    for student, notebook in expected.items():
        assert rows[student].status == "graded" and rows[student].cells == {
            **EXPECTED[notebook], **{c: None for c in rows[student].cells if c.startswith("q_")}}, student
    for step, done in class_run["steps"].items():
        assert done.returncode == 0 and "Traceback" not in done.stderr, f"{step}: {done.stdout}\n{done.stderr[-3000:]}"
    assert f"final feedback: {len(expected)} page(s)" in class_run["steps"]["feedback"].stdout
    assert sorted(p.stem for p in (out / "final_feedback").glob("*.html")) == sorted(expected)
    golden = (FIXTURES / lms / "upload.csv").read_text(encoding="utf-8").splitlines()
    assert class_run["upload"].read_text(encoding="utf-8").splitlines() == golden
    summary = class_run["steps"]["export"].stdout
    assert "no submission, 0 in the LMS file" in summary and "WARNING" not in summary
    assert (lms == "moodle") == ("skipped, the LMS's test user" not in summary)  # Canvas's and Blackboard's test users
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}", cfg.COURSE_ID) as gb:  # nobody the input does not hold
        assert sorted(s.id for s in gb.students) == sorted(expected)


@pytest.mark.parametrize("class_run", ["canvas"], indirect=True)
def test_the_final_feedback_shows_hand_grades_comments_the_late_penalty_and_no_secret(class_run):
    out, best = class_run["out"], class_run["best"]
    page = (out / "final_feedback" / f"{best}.html").read_text(encoding="utf-8")
    assert "W4_Tutorial1 (Score: 32.0 / 32.0)" in page and "Final score: 32 / 32" in page
    assert "graded by hand: 11 / 11" in page and "submitted on time: no late penalty" in page
    comment = page.index(COMMENT)
    assert "Use the total lateness" in page[comment - 1500:comment]  # the answer, its score, then the comment
    late = (out / "final_feedback" / "1002.html").read_text(encoding="utf-8")
    assert "W4_Tutorial1 (Score: 5.1 / 32.0)" in late and "Late submission penalty (Score: -6.4)" in late
    assert "late penalty -6.4: submitted 2026-10-18 22:10 EDT, 2 day(s) after the due date" in late
    for text in (page, late):
        assert "For graders only" not in text and "Rubric (" not in text and "HIDDEN TESTS" not in text
        assert "student.call(" not in text and "expect_integer" not in text  # no hidden test's code
    with open(out / export.FINAL_CSV, newline="", encoding="utf-8") as f:
        final = {row["student_id"]: row for row in csv.DictReader(f)}
    assert final[best]["q_better_loss"] == "1" and final[best]["final_score"] == "32"
    assert final["1002"]["q_bn_learnable_ab"] == "0" and final["1002"]["late_penalty"] == "6.4"


@pytest.mark.parametrize("class_run", ["canvas"], indirect=True)
def test_a_rerun_with_nothing_to_do_says_so(class_run):
    done = cli("canvas", "grade", class_run["zip"], "--out", class_run["out"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 up to date" in done.stderr and "0submission" not in done.stderr and "grading:" not in done.stderr


@pytest.mark.parametrize("class_run", ["canvas"], indirect=True)
def test_renewed_cells_and_students_missing_from_the_input(class_run, tmp_path):
    out = tmp_path / "class"
    shutil.copytree(class_run["out"], out)
    # new tests renew the gradebook's cells: the manual grades of the 2 students graded by hand are kept
    (out / ".course" / "gradebook.fingerprint").write_text("an older version of the tests")
    renewed = cli("canvas", "grade", class_run["zip"], "--out", out)
    assert renewed.returncode == 0 and "manual grades of 2 student(s) kept" in renewed.stderr, renewed.stderr[-2000:]
    fewer = download_zip("canvas", tmp_path / "fewer.zip", without="1003")  # Bob's file since deleted in Canvas
    kept = cli("canvas", "grade", fewer, "--out", out)
    assert kept.returncode == 0 and "holds 1 student(s) that this run's input does not hold: 1003" in kept.stderr
    assert "--remove-missing" in kept.stderr and (out / "submitted" / "1003").is_dir()
    removed = cli("canvas", "grade", fewer, "--out", out, "--remove-missing")
    assert removed.returncode == 0 and "removed 1 student(s)" in removed.stderr
    assert not (out / "submitted" / "1003").exists() and not (out / "feedback" / "1003.html").exists()
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}", cfg.COURSE_ID) as gb:
        assert sorted(s.id for s in gb.students) == ["1001", "1002"]
    # Bob uploads a file that is no notebook: 0 points, his fault; final, but no feedback page to give
    broken = download_zip("canvas", tmp_path / "broken.zip", without="1003",
                          extra={"roebob_1003_50999_W4_Tutorial1.ipynb": b"{not json"})
    assert cli("canvas", "grade", broken, "--out", out).returncode == 0
    pages = cli("canvas", "feedback", out)
    assert pages.returncode == 0 and "final feedback: 2 page(s)" in pages.stdout, pages.stderr[-2000:]
    assert "no page for 1003: no autograded notebook (error: " in pages.stdout
    # the LMS's policy: nothing taken off here, no one flagged for a time, Canvas's marker shown
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cfg, "LMS", "canvas")
        patch.setattr(cfg, "LATE_POLICY", "lms")
        (out / export.TIMES).unlink()
        done = export.export(out, tmp_path / "lms.csv", roster=FIXTURES / "canvas" / "roster.csv")
    by_id = {g.student_id: g for g in done.grades}
    assert by_id["1002"].final and by_id["1002"].score == pytest.approx(11.5)
    assert "Canvas's late policy applies" in export.summary(done.grades, done.file)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("class_run", ["canvas"], indirect=True)
def test_the_formgrader_stops_with_its_command_and_names_a_busy_port(class_run):
    port = free_port()
    command = subprocess.Popen([sys.executable, "-m", "autograder", "formgrader", str(class_run["out"]), "--port",
                                str(port)], cwd=cfg.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = command.stdout.readline()
        assert re.match(rf"formgrader: http://127\.0\.0\.1:{port}/formgrader\?token=\w+", first), first
        assert f"ssh -N -L {port}:127.0.0.1:{port}" in command.stdout.readline()
        busy = subprocess.run([sys.executable, "-m", "autograder", "formgrader", str(class_run["out"]), "--port",
                               str(port)], cwd=cfg.ROOT, capture_output=True, text=True, timeout=120)
        assert busy.returncode == 2 and f"port {port} on 127.0.0.1 is in use" in busy.stderr, busy.stderr
        assert "Expecting value" not in busy.stderr
        command.send_signal(signal.SIGTERM)
        assert command.wait(30) == 0
    finally:
        if command.poll() is None:
            command.kill()
    deadline = time.monotonic() + 20
    while listening(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not listening(port), "the server outlived its command"
    runtime = class_run["out"] / ".course" / "jupyter" / "runtime"
    assert not list(runtime.glob("jpserver-*.json"))  # it shut down cleanly, removing its files
