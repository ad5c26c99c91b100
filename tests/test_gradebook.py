"""From autograded rows to final grades, on a class of the example submissions.

The class is an nbgrader ``submitted/`` tree with ``timestamp.txt`` files: two on time (one
inside the grace period), one late by a day and a half, one unreadable time, one missing. It is
graded once per module; each test then works on a copy of its own of that graded class, and builds
the state it needs itself (``hand_graded``: every answer graded through ``manual-import``), so the
tests pass alone and in any order: three free-response answers graded in the formgrader through a
real browser, the rest through ``manual-sheet`` and ``manual-import``, the final grades exported,
and one student regraded after a (simulated) test change.
"""
from __future__ import annotations

import csv
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

import course_config as cfg
from autograder.marking import export, formgrader, manual
from autograder.grading.gradebook import GRADER_ONLY, course_path
from autograder.grading.grade import grade
from autograder.grading.results import graded_cells
from tests.browser import browser_or_skip, chrome

pytestmark = [pytest.mark.kernel, pytest.mark.slow]
AUTO_IDS, MANUAL_IDS = graded_cells()
EXPECTED = json.loads((cfg.EXAMPLES_DIR / "expected.json").read_text())
TIMES = {  # course_config.DUE_DATE is 2026-10-16 23:59 in America/New_York
    "reference": "2026-10-16 22:00:00",  # on time
    "partial_bn_after_relu": "2026-10-17 04:10:00.000000 UTC",  # 11 minutes late: inside the grace period
    "partial_memory_only": "2026-10-18-11-30-00",  # 35.5 hours late: 2 started days
    "partial_mib_and_softmax": "last friday",  # unreadable
}  # blank: no timestamp.txt
BROWSER_GRADED = ["q_delivery_strategy", "q_better_loss", "q_good_descent"]  # reference's, in the formgrader
COMMENT = "Convex in lateness, with the reason: full marks."  # a grader's comment on the reference's q_better_loss


def points_for(student: str, question: str) -> float:
    """The manual score every grading path gives: full for the reference, half for the others."""
    return cfg.POINTS[question] if student == "reference" else cfg.POINTS[question] / 2


def db_url(run: Path) -> str:
    return f"sqlite:///{run / 'gradebook.db'}"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The class, autograded once for the module: never changed by a test (each works on a copy)."""
    tree = tmp_path_factory.mktemp("submitted")
    for notebook in cfg.EXAMPLES_DIR.glob("*.ipynb"):
        folder = tree / notebook.stem / cfg.ASSIGNMENT_ID
        folder.mkdir(parents=True)
        shutil.copy(notebook, folder / f"{cfg.NOTEBOOK_NAME}.ipynb")
        if notebook.stem in TIMES:
            (folder / "timestamp.txt").write_text(TIMES[notebook.stem])
    out = tmp_path_factory.mktemp("class")
    rows = grade(tree, out, workers=2, canary=False)  # the canary is tested in test_grade.py
    assert all(row.status == "graded" for row in rows), [row.status for row in rows]
    return tree, out


@pytest.fixture
def run(graded, tmp_path):
    """A copy of the autograded class for one test: what another test did to its own copy is not here."""
    tree, out = graded
    copy = tmp_path / "class"
    shutil.copytree(out, copy, symlinks=True)
    return tree, copy


@pytest.fixture
def hand_graded(run, tmp_path):
    """The class with every written answer graded by hand (``points_for``), through the sheet and
    ``manual.import_manual_grades``, and the grader's ``COMMENT`` on the reference's q_better_loss."""
    _, out = run
    _, sheet = manual.write_manual_sheet(out, tmp_path / "fixture-sheet")
    lines = read_csv(sheet)
    for line in lines:
        line["points"] = f"{points_for(line['student_id'], line['question']):g}"
        if (line["student_id"], line["question"]) == ("reference", "q_better_loss"):
            line["comment"] = COMMENT
    assert manual.import_manual_grades(write_csv(tmp_path / "fixture-grades.csv", lines), out) == len(lines)
    return run


def test_one_gradebook_holds_the_class_for_the_formgrader(run):
    _, out = run
    with Gradebook(db_url(out), cfg.COURSE_ID) as gb:
        assert sorted(s.id for s in gb.students) == sorted(EXPECTED)
        for student, cells in EXPECTED.items():
            nb = gb.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, student)
            grades = {g.name: g for g in nb.grades}
            assert {c: grades[c].auto_score for c in cells} == cells, student
            # answered free-response cells wait for a grader; the blank's were scored 0 by nbgrader
            waiting = {g for g in MANUAL_IDS if grades[g].needs_manual_grade}
            if student == "blank":
                assert waiting == set(), waiting
            elif student == "reference":
                assert waiting == set(MANUAL_IDS), waiting  # it answers every question
            else:
                assert waiting and waiting <= set(MANUAL_IDS), (student, waiting)
        assert gb.find_submission(cfg.ASSIGNMENT_ID, "reference").timestamp is not None
    for student in EXPECTED:
        assert (course_path(out, "submitted", student) / f"{cfg.NOTEBOOK_NAME}.ipynb").is_file()
    # graders see each rubric beside the answer; the student's feedback never does
    graded = nbformat.read(course_path(out, "autograded", "reference") / f"{cfg.NOTEBOOK_NAME}.ipynb", as_version=4)
    rubric_cells = [c for c in graded.cells if c.metadata.get(GRADER_ONLY)]
    assert len(rubric_cells) == len(MANUAL_IDS) and all("Rubric" in c.source for c in rubric_cells)
    feedback = (out / "feedback" / "reference.html").read_text()
    assert "For graders only" not in feedback and "**Rubric" not in feedback and "Rubric (1 point)" not in feedback


def test_feedback_generated_by_nbgrader_from_the_class_course_hides_the_rubrics(run):
    _, out = run
    done = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "generate_feedback", cfg.ASSIGNMENT_ID,
                           "--student", "reference", "--force"], cwd=out, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    html = (out / "feedback" / "reference" / cfg.ASSIGNMENT_ID / f"{cfg.NOTEBOOK_NAME}.html").read_text()
    assert "For graders only" not in html and "Model answer" not in html


def test_three_answers_graded_in_the_formgrader_reach_the_gradebook(run, tmp_path):
    browser_or_skip()
    import secrets
    import socket

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    _, out = run
    with Gradebook(db_url(out), cfg.COURSE_ID) as gb:
        submission = gb.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, "reference").id
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token, base = secrets.token_hex(16), f"http://127.0.0.1:{port}"
    server = formgrader.start(out, port, token, tmp_path / "home", tmp_path / "server.log")
    driver = None
    try:
        formgrader.wait_ready(server, base, token)
        driver = chrome(tmp_path / "chrome")
        driver.get(f"{base}/formgrader/submissions/{submission}/?token={token}")
        wait = WebDriverWait(driver, 30, poll_frequency=0.05)
        # typing before the page's Backbone views are bound is silently lost
        wait.until(lambda d: d.execute_script(
            "return !!(window.formgrader && formgrader.grades && formgrader.grades.loaded && formgrader.comments"
            " && formgrader.comments.loaded && formgrader.grade_uis.length > 0)"))
        driver.execute_script("window.saved = 0; $(document).on('finished_saving', function () { window.saved++; });")
        page = driver.find_element(By.ID, "notebook-container").text
        assert "For graders only" in page and "Rubric (1 point)" in page  # the rubric beside the answer
        saves = 0
        for question in BROWSER_GRADED:
            box = driver.find_element(By.CSS_SELECTOR, f"input.score#{question}")
            box.clear()
            box.send_keys(f"{points_for('reference', question):g}", Keys.TAB)  # saved on change (blur)
            saves += 1
            wait.until(lambda d, n=saves: d.execute_script("return window.saved") >= n)
        comment = driver.find_element(By.CSS_SELECTOR, "textarea.comment#q_better_loss-comment")
        comment.clear()
        comment.send_keys(COMMENT)
        driver.execute_script("arguments[0].blur();", comment)
        wait.until(lambda d: d.execute_script("return window.saved") >= saves + 1)
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(20)
    with Gradebook(db_url(out), cfg.COURSE_ID) as gb:
        for question in BROWSER_GRADED:
            grade = gb.find_grade(question, cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, "reference")
            assert grade.manual_score == points_for("reference", question) and not grade.needs_manual_grade
        comment = gb.find_comment("q_better_loss", cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, "reference")
        assert comment.manual_comment == COMMENT


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=manual.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def snapshot(run: Path) -> dict:
    with Gradebook(db_url(run), cfg.COURSE_ID) as gb:
        return {(s.id, g.name): (g.manual_score, g.needs_manual_grade) for s in gb.students
                for g in gb.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, s.id).grades}


def test_a_bad_grades_file_names_each_wrong_line_and_changes_nothing(run, tmp_path):
    _, out = run
    before = snapshot(out)
    bad = write_csv(tmp_path / "bad.csv", [
        {"student_id": "reference", "question": "q_bn_learnable_ab", "points": "2", "comment": "fine"},  # good
        {"student_id": "reference", "question": "q_good_descent", "points": "5"},  # above 1
        {"student_id": "mallory", "question": "q_good_descent", "points": "1"},  # no such student
        {"student_id": "reference", "question": "test_ex1_memory", "points": "1"},  # autograded
        {"student_id": "reference", "question": "q_better_loss", "points": "lots"},
        {"student_id": "reference", "question": "q_bn_learnable_ab", "points": "1"},  # twice
    ])
    with pytest.raises(manual.ManualImportError) as error:
        manual.import_manual_grades(bad, out)
    message = str(error.value)
    for line, words in [(3, "outside 0..1"), (4, "unknown student 'mallory'"), (5, "not a free-response"),
                        (6, "not a number"), (7, "again (first on line 2)")]:
        assert f"bad.csv:{line}: " in message and words in message, (line, message)
    assert "bad.csv:2:" not in message and "nothing was imported" in message
    assert snapshot(out) == before  # not even the good line
    done = subprocess.run([sys.executable, "-m", "autograder", "manual-import", str(bad), "--run", str(out)],
                          cwd=cfg.ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "bad.csv:3:" in done.stderr


def test_the_rest_is_graded_through_the_manual_sheet(run, tmp_path):
    _, out = run
    pages, sheet = manual.write_manual_sheet(out, tmp_path / "sheet")
    assert sorted(p.stem for p in pages) == sorted(MANUAL_IDS)
    page = (tmp_path / "sheet" / "q_better_loss.html").read_text()
    assert "Rubric (1 point)" in page and "partial_memory_only" in page and "<script" not in page
    lines = read_csv(sheet)
    assert {line["student_id"] for line in lines} == set(EXPECTED) - {"blank"}  # blank answers: 0 by nbgrader
    for line in lines:
        if not line["points"]:
            line["points"] = f"{points_for(line['student_id'], line['question']):g}"
    filled = write_csv(tmp_path / "filled.csv", lines)
    done = subprocess.run([sys.executable, "-m", "autograder", "manual-import", str(filled), "--run", str(out)],
                          cwd=cfg.ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not any(needs for (_, name), (_, needs) in snapshot(out).items())


def expected_final(run: Path, student: str) -> float:
    """Autograded + the points given to each answer written (an unchanged one is 0) - the late penalty."""
    auto = sum(EXPECTED[student].values())
    answered = [q for q, rows in manual.collect(run).items() for a in rows if a.student_id == student and not a.no_response]
    manual_points = sum(points_for(student, q) for q in answered)
    late = {"partial_memory_only": 0.2 * sum(cfg.POINTS.values())}.get(student, 0.0)  # 2 days x 10 %
    return auto + manual_points - late


def test_export_writes_the_lms_file_with_the_final_totals(hand_graded, tmp_path):
    _, out = hand_graded
    done = subprocess.run([sys.executable, "-m", "autograder", "export", str(out), "--out", str(tmp_path / "lms.csv")],
                          cwd=cfg.ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lms = {row["SIS Login ID"]: row for row in read_csv(tmp_path / "lms.csv") if row["SIS Login ID"]}
    column = cfg.LMS_ASSIGNMENT_COLUMN
    for student in ["reference", "partial_bn_after_relu", "partial_memory_only"]:
        assert float(lms[student][column]) == pytest.approx(expected_final(out, student)), student
    # unknown or unreadable submission times are flagged, never taken as on time: no score posted
    assert lms["blank"][column] == lms["partial_mib_and_softmax"][column] == ""
    nbgrader_rows = {row["student_id"]: row for row in read_csv(tmp_path / "lms-nbgrader.csv")}
    assert float(nbgrader_rows["partial_memory_only"]["late_submission_penalty"]) == pytest.approx(6.4)
    assert "no timestamp.txt" in nbgrader_rows["blank"]["flags"]
    assert "unreadable submission time 'last friday'" in nbgrader_rows["partial_mib_and_softmax"]["flags"]
    assert nbgrader_rows["partial_bn_after_relu"]["flags"] == "" and "2 day(s) late" in done.stdout
    with Gradebook(db_url(out), cfg.COURSE_ID) as gb:  # nbgrader's own view agrees
        late = gb.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, "partial_memory_only")
        assert late.late_submission_penalty == pytest.approx(6.4)


def test_regrading_after_a_test_change_keeps_the_manual_grades(hand_graded, caplog):
    tree, out = hand_graded
    stored = out / ".course" / "results" / "reference.json"
    result = json.loads(stored.read_text())
    result["grader"] = "an older version of the tests"
    stored.write_text(json.dumps(result))
    before = snapshot(out)
    copies = {path.parts[-3]: path.stat().st_mtime_ns for path in (out / "autograded").glob("*/*/*.ipynb")}
    with caplog.at_level(logging.WARNING):
        rows = {row.student_id: row for row in grade(tree, out, canary=False)}
    assert "1 stored result(s) are stale" in caplog.text and "reference" in caplog.text
    # the regraded student's autograded copy is new; the stored ones' copies were left as they were
    after = {path.parts[-3]: path.stat().st_mtime_ns for path in (out / "autograded").glob("*/*/*.ipynb")}
    assert after["reference"] > copies["reference"]
    assert {s: t for s, t in after.items() if s != "reference"} == {s: t for s, t in copies.items() if s != "reference"}
    assert len(copies) >= 3, copies
    assert json.loads(stored.read_text())["grader"] != "an older version of the tests"  # graded again
    assert rows["reference"].score == sum(EXPECTED["reference"].values())
    assert snapshot(out) == before  # manual scores kept, none back to "needs grading"
    with Gradebook(db_url(out), cfg.COURSE_ID) as gb:
        comment = gb.find_comment("q_better_loss", cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, "reference")
        assert comment.manual_comment == COMMENT
    assert export.final_grades(out)[[g.student_id for g in export.final_grades(out)].index("reference")].score == \
        pytest.approx(expected_final(out, "reference"))
