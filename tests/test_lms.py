"""LMS downloads, rosters and times, without a kernel: names read as each LMS writes them.

The downloads are ``tests/lms/<lms>/download.csv`` (``tests/lms_downloads.py``), with names exactly
as Canvas, Moodle and Blackboard write them: accents without the zip's UTF-8 flag, spaces, hyphens,
Canvas's late marker and resubmission suffix, Moodle's per-student folders, Blackboard's attempt
times, and uploads named to take another student's place or to fake an on-time stamp.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from datetime import timedelta

import pytest

import course_config as cfg
from autograder import late
from autograder.marking import export
from autograder.lms import LMS_FORMATS, lms_format
from autograder.grading.submissions import SubmissionsError, extract_zip, find_submissions, read_origin
from tests.lms_downloads import FIXTURES, download_zip, expected_students, members

pytestmark = pytest.mark.fast

RELEASE = cfg.RELEASE_NOTEBOOK.read_bytes()


@pytest.fixture
def lms(monkeypatch, request):
    """``course_config.LMS`` set to the test's LMS (``@pytest.mark.parametrize("lms", [...], indirect=True)``)."""
    monkeypatch.setattr(cfg, "LMS", request.param)
    monkeypatch.setattr(cfg, "ZIP_FILENAME_REGEXP", None)
    return request.param


def unpack(archive, tmp_path):
    return {s.student_id: s for s in find_submissions(extract_zip(archive, tmp_path / "unzipped"))}


@pytest.mark.parametrize("lms", sorted(LMS_FORMATS), indirect=True)
def test_each_download_is_read_as_the_lms_names_it(lms, tmp_path):
    found = unpack(download_zip(lms, tmp_path / "download.zip"), tmp_path)
    expected = expected_students(lms)
    assert sorted(found) == sorted(expected)
    for student, notebook in expected.items():
        submission = found[student]
        assert submission.problem is None and submission.fault is None, submission
        assert submission.path.read_bytes() == (cfg.EXAMPLES_DIR / f"{notebook}.ipynb").read_bytes(), student
        graded = next(m["path"] for m in members(lms) if m["student"] == student)
        assert submission.origin["member"] == graded and submission.origin["lms_id"] == student  # as in the zip
    later = [m["path"] for m in members(lms) if not m["student"] and m["notebook"] != "-"]
    assert sorted(p for s in found.values() for p in s.origin["not_graded"]) == sorted(later)


def test_canvas_late_marker_accents_without_the_utf8_flag_and_resubmissions(monkeypatch, tmp_path):
    monkeypatch.setattr(cfg, "LMS", "canvas")
    archive = download_zip("canvas", tmp_path / "download.zip")
    with zipfile.ZipFile(archive) as z:  # as rubyzip writes them: no UTF-8 flag, so a naive reader sees cp437
        assert not any(i.flag_bits & 0x800 for i in z.infolist()) and any("├" in i.filename for i in z.infolist())
    found = unpack(archive, tmp_path)
    assert found["1002"].origin["name"] == "müllernúñezjosé" and found["1002"].origin["late"] is True
    assert found["1001"].origin["late"] is False and found["1001"].origin["member"].endswith("W4_Tutorial1-1.ipynb")
    assert found["1002"].submitted_at is None  # Canvas's names carry no time


def test_an_upload_named_as_another_student_is_graded_as_its_uploader(monkeypatch, tmp_path):
    monkeypatch.setattr(cfg, "LMS", "canvas")
    # mallory uploads a blank notebook named as Alice's file: Canvas puts mallory's own fields first
    archive = download_zip("canvas", tmp_path / "download.zip", extra={
        "mallorym_1004_59999_smithalice_1001_59998_W4_Tutorial1.ipynb": "blank"})
    found = unpack(archive, tmp_path)
    assert found["1004"].origin["member"].startswith("mallorym_1004_")
    assert found["1001"].origin["member"] == "smithalice_1001_50210_W4_Tutorial1-1.ipynb"
    assert found["1001"].path.read_bytes() == (cfg.EXAMPLES_DIR / "reference.ipynb").read_bytes()


def test_blackboard_names_cannot_be_forged_by_the_uploaded_name(monkeypatch, tmp_path):
    monkeypatch.setattr(cfg, "LMS", "blackboard")
    found = unpack(download_zip("blackboard", tmp_path / "download.zip"), tmp_path)
    # x_asmith_attempt_2099-... uploaded by broe: broe's own blank, not asmith's latest attempt
    assert found["asmith"].path.read_bytes() == (cfg.EXAMPLES_DIR / "reference.ipynb").read_bytes()
    assert found["asmith"].submitted_at == "2026-10-16-22-00-00"
    assert "x_asmith_attempt_2099" in found["broe"].origin["member"]
    # four days late, named with an on-time stamp: the attempt's own time counts
    assert found["jo-ann.lee"].submitted_at == "2026-10-19-12-00-00"
    days = late.lateness(late.parse_time(found["jo-ann.lee"].submitted_at), 20.0, 32.0)
    assert days.units == 3 and days.penalty == pytest.approx(9.6)


def test_the_old_greedy_pattern_took_the_forged_fields(tmp_path):
    """nbgrader's documented example, this course's former default: the uploaded name won."""
    import re

    greedy = re.compile(r".*_(?P<student_id>\w+)_attempt_(?P<timestamp>[0-9\-]+)_(?P<file_id>\w+)")
    forged = next(m["path"] for m in members("blackboard") if m["student"] == "broe")
    assert greedy.match(forged)["student_id"] == "asmith"  # the bug of the issue this test guards


def test_moodle_flat_names_and_folders_read_alike(monkeypatch, tmp_path):
    monkeypatch.setattr(cfg, "LMS", "moodle")
    flat = tmp_path / "flat.zip"
    with zipfile.ZipFile(flat, "w") as z:
        z.writestr("María José Núñez_203_assignsubmission_file_W4_Tutorial1.ipynb", RELEASE)
        z.writestr("Alice Smith_201_assignsubmission_onlinetext_onlinetext.html", b"<p>hello</p>")
    found = unpack(flat, tmp_path)
    assert list(found) == ["203"] and found["203"].origin["name"] == "María José Núñez"


@pytest.mark.parametrize("lms", ["moodle"], indirect=True)
def test_a_download_of_another_lms_stops_before_grading(lms, tmp_path):
    archive = download_zip("canvas", tmp_path / "canvas.zip")
    with pytest.raises(SubmissionsError) as error:
        extract_zip(archive, tmp_path / "unzipped")
    message = str(error.value)
    assert "course_config.LMS = 'moodle'" in message and "assignsubmission_file" in message  # the setting, the pattern
    assert "'smithalice_1001_50001_W4_Tutorial1.ipynb'" in message and "Nothing was graded" in message
    done = subprocess.run([sys.executable, "-c", "import sys, course_config; course_config.LMS = 'moodle'; "
                           "from autograder.__main__ import main; sys.exit(main(sys.argv[1:]))",
                           "grade", str(archive), "--out", str(tmp_path / "out")],
                          cwd=cfg.ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "Nothing was graded" in done.stderr
    assert not (tmp_path / "out" / "grades.csv").exists()


@pytest.mark.parametrize("lms", ["canvas"], indirect=True)
def test_one_unmatched_name_is_the_graders_fault_named_as_in_the_zip(lms, tmp_path):
    archive = download_zip("canvas", tmp_path / "download.zip", extra={"W4_Tutorial1 (final).ipynb": "blank"})
    found = unpack(archive, tmp_path)
    [odd] = [s for s in found.values() if s.fault]
    assert odd.student_id.startswith("unmatched-") and odd.problem is None
    assert "'W4_Tutorial1 (final).ipynb' in the zip" in odd.fault and "course_config.LMS = 'canvas'" in odd.fault
    assert read_origin(odd.path.parent)["unmatched"] is True


def test_a_custom_pattern_that_reads_from_the_end_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(cfg, "ZIP_FILENAME_REGEXP", r".*_(?P<student_id>\w+)_attempt_(?P<timestamp>[0-9\-]+)_")
    with pytest.raises(ValueError, match="starts with '.\\*' or '.\\+'"):
        extract_zip(download_zip("blackboard", tmp_path / "b.zip"), tmp_path / "unzipped")
    monkeypatch.setattr(cfg, "ZIP_FILENAME_REGEXP", r"(?P<student_id>[a-z]+)-(?P<timestamp>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)")
    archive = tmp_path / "custom.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("alice-2026-10-16-10-00-00.ipynb", RELEASE)
        z.writestr("alice-2026-10-17-10-00-00.ipynb", RELEASE)
    assert unpack(archive, tmp_path)["alice"].submitted_at == "2026-10-17-10-00-00"


# --- rosters ---------------------------------------------------------------------------------------------

def graded(student: str, score: float | None, *, origin: dict | None = None, unfinished=()) -> export.FinalGrade:
    on_time = late.lateness(late.parse_time("2026-10-16 12:00"), score or 0, 32.0)
    return export.FinalGrade(student, score, 32.0, on_time, list(unfinished), origin=origin)


def downloaded(lms: str, lms_id: str) -> dict:
    return {"lms": lms, "lms_id": lms_id, "member": "x", "name": "", "late": False}


def rows(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("lms", ["canvas"], indirect=True)
def test_canvas_roster_joins_on_user_id_sis_login_or_sis_id_and_keeps_its_column(lms, tmp_path):
    grades = [graded("1001", 30, origin=downloaded("canvas", "1001")),  # a download's user id: ID
              graded("jmullernunez", 20, unfinished=["q_good_descent"]),  # a folder named by SIS login
              graded("S1003", 12)]  # ... or by SIS user id
    found = export.lms_file(grades, roster=FIXTURES / "canvas" / "roster.csv")
    assert found.header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "W4 Optimization (123456)"]
    assert found.rows[0] == ["    Points Possible", "", "", "", "", 32.0]
    assert [r[1] for r in found.rows[1:]] == ["1001", "1002", "1003", "1005"]  # the roster's order, Test Student out
    assert [r[-1] for r in found.rows[1:]] == [30.0, None, 12.0, 0.0]  # unfinished: blank; no submission: 0
    assert found.missing == ["Doe, Jane (1005)"] and found.skipped == ["Student, Test (1099)"]


@pytest.mark.parametrize("lms", ["canvas"], indirect=True)
def test_a_roster_without_the_assignment_column_is_refused_naming_its_columns(lms, tmp_path, monkeypatch):
    monkeypatch.setattr(cfg, "LMS_ASSIGNMENT_COLUMN", "Week 4: Optimization")
    with pytest.raises(ValueError) as error:
        export.lms_file([graded("1001", 30, origin=downloaded("canvas", "1001"))],
                        roster=FIXTURES / "canvas" / "roster.csv")
    message = str(error.value)
    assert "no column 'Week 4: Optimization (<id>)'" in message and "would create a new assignment" in message
    assert "W3 Regularization (123450), W4 Optimization (123456)" in message


@pytest.mark.parametrize("lms", ["canvas"], indirect=True)
def test_students_missing_from_the_roster_stop_the_export(lms, tmp_path):
    grades = [graded("1001", 30, origin=downloaded("canvas", "1001")), graded("1777", 3, origin=downloaded("canvas", "1777"))]
    with pytest.raises(ValueError, match=r"no row for 1777 \(looked in ID, SIS Login ID, SIS User ID\); nothing was written"):
        export.write_lms_csv(grades, tmp_path / "out.csv", roster=FIXTURES / "canvas" / "roster.csv")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("lms", ["canvas"], indirect=True)
def test_the_test_student_graded_is_skipped_and_said(lms, monkeypatch):
    monkeypatch.setattr(cfg, "MISSING_SUBMISSION", "blank")
    found = export.lms_file([graded("1099", 0, origin=downloaded("canvas", "1099"))],
                            roster=FIXTURES / "canvas" / "roster.csv")
    assert found.skipped == ["Student, Test (1099), graded as 1099"]
    assert all(r[-1] is None for r in found.rows[1:])  # MISSING_SUBMISSION = "blank"
    assert "skipped, the LMS's test user: Student, Test (1099)" in export.summary([], found)


@pytest.mark.parametrize("lms", ["canvas"], indirect=True)
def test_unassigned_files_hold_back_the_zeros_of_missing_students(lms):
    found = export.lms_file([graded("1001", 30, origin=downloaded("canvas", "1001"))],
                            roster=FIXTURES / "canvas" / "roster.csv", unassigned=1)
    assert [r[-1] for r in found.rows[1:]] == [30.0, None, None, None]
    assert any("could not be matched to a student" in w for w in found.warnings)


@pytest.mark.parametrize("lms", ["moodle"], indirect=True)
def test_moodle_upload_is_its_worksheet_with_the_grade(lms):
    grades = [graded("201", 31.5, origin=downloaded("moodle", "201")), graded("203", 0, origin=downloaded("moodle", "203"))]
    found = export.lms_file(grades, roster=FIXTURES / "moodle" / "roster.csv")
    assert found.header[:5] == ["Identifier", "Full name", "Email address", "Status", "Grade"]
    grade = found.header.index("Grade")
    assert [(r[0], r[grade]) for r in found.rows] == [("Participant 201", 31.5), ("Participant 202", 0.0),
                                                      ("Participant 203", 0.0), ("Participant 204", 0.0)]
    assert found.missing == ["Jean-Luc O'Brien (Participant 202)", "Sam Lee (Participant 204)"]


@pytest.mark.parametrize("lms", ["blackboard"], indirect=True)
def test_blackboard_points_that_differ_are_a_warning(lms, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text((FIXTURES / "blackboard" / "roster.csv").read_text().replace("[Total Pts: 32 Score] |123456",
                                                                                   "[Total Pts: 100 Score] |123456"))
    found = export.lms_file([graded("asmith", 30, origin=downloaded("blackboard", "asmith"))], roster=roster)
    assert found.header[-1] == "W4 Optimization [Total Pts: 100 Score] |123456"
    assert any("is worth 100 points" in w for w in found.warnings)
    export.write_lms_csv([graded("asmith", 30, origin=downloaded("blackboard", "asmith"))], tmp_path / "bb.csv",
                         roster=roster)
    assert (tmp_path / "bb.csv").read_text().splitlines()[0].startswith('"Last Name","First Name","Username"')


# --- times and the late policy ------------------------------------------------------------------------

def test_times_files_of_every_form(tmp_path):
    canvas = late.read_times(FIXTURES / "canvas" / "submissions.json")
    assert canvas == {"1001": "2026-10-17T01:30:00Z", "1002": "2026-10-19T02:10:00Z", "1003": "2026-10-16T20:00:00Z"}
    moodle = late.read_times(FIXTURES / "moodle" / "roster.csv")
    assert moodle["202"] == "Saturday, 17 October 2026, 9:15 AM" and "204" not in moodle
    assert late.lateness(late.parse_time(moodle["202"]), 20, 32).units == 1
    plain = tmp_path / "times.csv"
    plain.write_text("student_id,submitted_at\nalice,2026-10-16 23:00\nbob,\n")
    assert late.read_times(plain) == {"alice": "2026-10-16 23:00"}
    plain.write_text("name,when\nalice,now\n")
    with pytest.raises(ValueError, match="no student_id and submitted_at columns.*its columns: name, when"):
        late.read_times(plain)


def test_the_lms_policy_takes_nothing_off_and_flags_no_missing_time(monkeypatch):
    monkeypatch.setattr(cfg, "LATE_POLICY", "lms")
    assert late.lateness(None, 20, 32) == late.Lateness(None, 0, 0.0)
    assert late.lateness(late.parse_time("2026-10-30 10:00"), 20, 32).penalty == 0
    monkeypatch.setattr(cfg, "LATE_POLICY", "course")
    missing = late.lateness(None, 20, 32)
    assert "submission time unknown" in missing.problem and "--times FILE" in missing.problem
    monkeypatch.setattr(cfg, "LATE_POLICY", "whenever")
    with pytest.raises(ValueError, match="course_config.LATE_POLICY"):
        late.check_policy()


def test_a_canvas_late_marker_is_named_where_the_time_is_missing(tmp_path):
    when, problem = export.submission_time(tmp_path, "1002", {}, {"lms": "canvas", "late": True})
    assert when is None and "(Canvas marks it late)" in problem
    when, problem = export.submission_time(tmp_path, "1002", {"1002": "2026-10-19T02:10:00Z"}, None)
    assert problem is None and when - late.due_date() > timedelta(days=1)


def test_lms_formats_name_their_columns():
    for name, layout in LMS_FORMATS.items():
        assert lms_format(name) is layout and layout.key in {k.column for k in layout.keys}
    with pytest.raises(ValueError, match="autograder/lms.py knows"):
        lms_format("sakai")
    assert json.loads((FIXTURES / "canvas" / "submissions.json").read_text())[0]["user_id"] == 1001


def test_times_files_add_up_and_stay_in_the_run(tmp_path):
    first = tmp_path / "page1.csv"
    first.write_text("student_id,submitted_at\nalice,2026-10-16 23:00\n1001,2026-10-10 10:00\n")
    kept = export.store_times(tmp_path, [first, FIXTURES / "canvas" / "submissions.json"])
    assert kept["alice"] == "2026-10-16 23:00" and kept["1001"] == "2026-10-17T01:30:00Z"  # the later file wins
    assert export.stored_times(tmp_path) == kept  # for feedback and export, run after
