"""The late policy and the LMS file, without a kernel: times, grace, units, cap, extensions, rosters."""
from __future__ import annotations

import csv
from datetime import timedelta

import pytest

import course_config as cfg
from autograder import late
from autograder.marking.export import FinalGrade, write_lms_csv

pytestmark = pytest.mark.fast

MAX = 32.0


def at(text: str):
    return late.parse_time(text)


@pytest.mark.parametrize("text, utc", [
    ("2026-10-16 23:58:01.123456 UTC", "2026-10-16 23:58:01.123456+00:00"),  # nbgrader's timestamp.txt
    ("2026-10-16T20:00:00-04:00", "2026-10-17 00:00:00+00:00"),  # ISO 8601 with its zone
    ("2026-10-16 20:00:00", "2026-10-17 00:00:00+00:00"),  # no zone: the course's (EDT, UTC-4)
    ("2026-10-16-20-00-00", "2026-10-17 00:00:00+00:00"),  # nbgrader zip_collect's example form
])
def test_submission_times_in_every_form_nbgrader_and_lms_write(text, utc):
    from datetime import timezone

    assert str(at(text).astimezone(timezone.utc)) == utc


@pytest.mark.parametrize("text", ["", "last friday", "2026-13-45 25:00", "16/10/2026"])
def test_an_unreadable_time_is_an_error_that_quotes_it(text):
    with pytest.raises(ValueError, match="unreadable submission time"):
        at(text)


def test_on_time_grace_units_and_cap(monkeypatch):
    monkeypatch.setattr(cfg, "DUE_DATE", "2026-10-16 23:59")
    monkeypatch.setattr(cfg, "LATE_GRACE_MINUTES", 15)
    monkeypatch.setattr(cfg, "LATE_PENALTY_UNIT", "day")
    monkeypatch.setattr(cfg, "LATE_PENALTY_PER_UNIT", 0.10)
    monkeypatch.setattr(cfg, "LATE_PENALTY_CAP", 0.50)
    assert late.lateness(at("2026-10-16 23:00"), 30, MAX).penalty == 0
    assert late.lateness(at("2026-10-17 00:14"), 30, MAX).penalty == 0  # inside the grace period
    one = late.lateness(at("2026-10-17 00:15"), 30, MAX)  # 16 minutes: the first day started
    assert (one.units, one.penalty) == (1, pytest.approx(3.2))
    assert late.lateness(at("2026-10-19 00:00"), 30, MAX).units == 3
    assert late.lateness(at("2026-11-20 00:00"), 30, MAX).penalty == pytest.approx(16.0)  # capped at 50 %
    assert late.lateness(at("2026-10-20 00:00"), 5, MAX).penalty == 5  # never below 0 points
    extended = late.lateness(at("2026-10-18 00:00"), 30, MAX, extension=timedelta(days=2))
    assert extended.penalty == 0 and extended.describe() == "on time"
    monkeypatch.setattr(cfg, "LATE_PENALTY_UNIT", "hour")
    assert late.lateness(at("2026-10-17 02:00"), 30, MAX).units == 3  # 2 h 1 min late: 3 started hours
    unknown = late.lateness(None, 30, MAX)
    assert unknown.penalty == 0 and "unknown" in unknown.problem


def test_a_wrong_policy_names_the_setting(monkeypatch):
    monkeypatch.setattr(cfg, "LATE_PENALTY_UNIT", "week")
    with pytest.raises(ValueError, match="course_config.LATE_PENALTY_UNIT"):
        late.check_policy()
    monkeypatch.setattr(cfg, "LATE_PENALTY_UNIT", "day")
    monkeypatch.setattr(cfg, "LATE_PENALTY_CAP", 5)
    with pytest.raises(ValueError, match="course_config.LATE_PENALTY_CAP"):
        late.check_policy()


def grades() -> list[FinalGrade]:
    on_time = late.lateness(at("2026-10-16 12:00"), 30, MAX)
    return [FinalGrade("alice", 30.0, MAX, on_time), FinalGrade("bob", 20.0, MAX, on_time, ["q_good_descent"]),
            FinalGrade("carol", 25.0, MAX, late.lateness(None, 25, MAX))]


def read(path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_the_canvas_file_posts_only_final_scores(tmp_path):
    rows = read(write_lms_csv(grades(), tmp_path / "canvas.csv"))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", cfg.LMS_ASSIGNMENT_COLUMN]
    assert rows[1][0].strip() == "Points Possible" and rows[1][-1] == "32"
    by_login = {row[3]: row for row in rows[2:]}
    assert by_login["alice"][-1] == "30"
    assert by_login["bob"][-1] == "" and by_login["carol"][-1] == ""  # unfinished, time unknown: blank


def test_a_roster_gives_names_and_lms_ids_and_a_missing_student_writes_nothing(tmp_path):
    roster = tmp_path / "roster.csv"
    column = f"{cfg.LMS_ASSIGNMENT_COLUMN} (4242)"  # Canvas's export: the assignment's name and id
    with open(roster, "w", newline="") as f:
        csv.writer(f).writerows([["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Week 3 (4241)", column],
                                 ["Doe, Alice", "1001", "S1", "alice", "A", "9", ""],
                                 ["Roe, Bob", "1002", "S2", "bob", "A", "8", ""],
                                 ["Poe, Carol", "1003", "S3", "carol", "B", "7", ""]])
    rows = read(write_lms_csv(grades(), tmp_path / "canvas.csv", roster=roster))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", column]  # the roster's own header
    assert rows[2] == ["Doe, Alice", "1001", "S1", "alice", "A", "30"]
    short = tmp_path / "short.csv"
    short.write_text(f"Student,ID,SIS User ID,SIS Login ID,Section,{column}\nDoe,1001,S1,alice,A,\n")
    with pytest.raises(ValueError, match=r"short.csv: no row for bob, carol \(looked in ID, SIS Login ID, SIS User ID\); "
                                         "nothing was written"):
        write_lms_csv(grades(), tmp_path / "other.csv", roster=short)
    assert not (tmp_path / "other.csv").exists()
