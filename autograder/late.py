"""The late policy of ``course_config``: when a submission came in, and what lateness costs.

``course_config.LATE_POLICY`` says who applies it:

- ``"course"``: the penalty is computed here. A submission's time comes from a times file
  (``export --times FILE``, ``read_times``: ``student_id,submitted_at``, Canvas's submissions API
  as JSON, or Moodle's grading worksheet), else nbgrader's ``timestamp.txt`` (a ``submitted/``
  tree, or the time in an LMS download's names: Blackboard's attempt time). A time that is missing
  or cannot be read is not taken as on time: ``Lateness.problem`` says so and how to give it, and
  the export flags the student.
- ``"lms"``: the LMS applies its own late policy (Canvas's late policy deducts in its gradebook);
  nothing is taken off here and no one is flagged for a missing time. Canvas's late marker is shown.

Penalty: each started ``LATE_PENALTY_UNIT`` after the due date costs ``LATE_PENALTY_PER_UNIT`` of
the maximum score, at most ``LATE_PENALTY_CAP`` of it, and never more than the student earned.
A submission within ``LATE_GRACE_MINUTES`` of the due date is on time.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import course_config as cfg
from autograder.errors import InputError

UNIT_SECONDS = {"day": 86400, "hour": 3600}
TIMESTAMP_FILE = "timestamp.txt"  # nbgrader's name, beside the notebook in submitted/<student>/<assignment>/
# nbgrader's own format ("2026-10-16 23:58:01.123456 UTC"), ISO 8601, and the dashed form of
# nbgrader's zip_collect example ("2026-10-16-23-58-01")
_DASHED = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})(?:-(\d{2}))?$")
# Moodle's worksheet ("Friday, 16 October 2026, 11:58 PM": its English strftimedatetime)
_WORDED = ("%A, %d %B %Y, %I:%M %p", "%d %B %Y, %I:%M %p")
POLICIES = ("course", "lms")


def course_zone() -> ZoneInfo:
    return ZoneInfo(cfg.COURSE_TIMEZONE)


def due_date() -> datetime:
    """``course_config.DUE_DATE`` as an aware datetime in the course's zone."""
    return datetime.fromisoformat(cfg.DUE_DATE).replace(tzinfo=course_zone())


def parse_time(text: str) -> datetime:
    """An aware datetime from a submission time; a time without a zone is in the course's zone.

    Raises ``ValueError`` saying which forms are understood.
    """
    raw = text.strip()
    dashed = _DASHED.match(raw)
    if dashed:
        parts = [int(p) for p in dashed.groups(default="0")]
        return datetime(*parts, tzinfo=course_zone())
    for form in _WORDED:
        try:
            return datetime.strptime(raw, form).replace(tzinfo=course_zone())
        except ValueError:
            pass
    candidate = raw
    zone = None
    if raw.endswith((" UTC", " GMT", "Z")):  # nbgrader writes "... UTC"
        candidate, zone = raw.removesuffix(" UTC").removesuffix(" GMT").removesuffix("Z"), timezone.utc
    try:
        when = datetime.fromisoformat(candidate)
    except ValueError:
        raise InputError(f"unreadable submission time {raw!r} (expected e.g. '2026-10-16 23:58:01 UTC', "
                         "'2026-10-16T23:58:01-04:00' or '2026-10-16-23-58-01')") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone or course_zone())
    return when


@dataclass(frozen=True)
class Lateness:
    submitted: datetime | None
    units: int  # started days or hours after the due date, 0 when on time
    penalty: float  # points taken off
    problem: str | None = None  # why the time is unknown; the export flags it

    def describe(self) -> str:
        if self.problem:
            return self.problem
        if not self.units:
            return "on time"
        return f"{self.units} {cfg.LATE_PENALTY_UNIT}(s) late: -{self.penalty:g} points"


def check_policy() -> None:
    """Raise ``ValueError`` naming the setting of ``course_config`` that is wrong."""
    if cfg.LATE_POLICY not in POLICIES:
        raise InputError(f"course_config.LATE_POLICY must be one of {list(POLICIES)}, not {cfg.LATE_POLICY!r}")
    if cfg.LATE_PENALTY_UNIT not in UNIT_SECONDS:
        raise InputError(f"course_config.LATE_PENALTY_UNIT must be one of {sorted(UNIT_SECONDS)}, "
                         f"not {cfg.LATE_PENALTY_UNIT!r}")
    for name in ("LATE_PENALTY_PER_UNIT", "LATE_PENALTY_CAP"):
        if not 0 <= getattr(cfg, name) <= 1:
            raise InputError(f"course_config.{name} is a share of the maximum score, from 0 to 1")
    due_date()


def lateness(submitted: datetime | None, score: float, max_score: float, *, extension: timedelta | None = None,
             problem: str | None = None) -> Lateness:
    """The lateness and penalty of a submission made at ``submitted`` that earned ``score``.

    ``extension``: the student's extension (nbgrader's ``grant_extension``), added to the due date.
    """
    if cfg.LATE_POLICY == "lms":  # the LMS's own policy applies; a time, if known, is only shown
        return Lateness(submitted, 0, 0.0)
    if submitted is None:
        return Lateness(None, 0, 0.0, problem or f"submission time unknown: no late penalty applied; {TIME_FIX}")
    late = (submitted - due_date() - (extension or timedelta())).total_seconds()
    if late <= timedelta(minutes=cfg.LATE_GRACE_MINUTES).total_seconds():
        return Lateness(submitted, 0, 0.0)
    units = math.ceil(late / UNIT_SECONDS[cfg.LATE_PENALTY_UNIT])
    share = min(cfg.LATE_PENALTY_CAP, units * cfg.LATE_PENALTY_PER_UNIT)
    return Lateness(submitted, units, round(min(max(score, 0.0), share * max_score), 4))


TIME_FIX = ("give the times with `export --times FILE` (student_id,submitted_at; Canvas: its submissions API's "
            "JSON; Moodle: its grading worksheet), or set course_config.LATE_POLICY = 'lms' to leave lateness to the LMS")


def read_times(path: Path) -> dict[str, str]:
    """Student id -> submission time as written, from a times file; ``ValueError`` naming the file and the fix.

    Three forms are read: a CSV with ``student_id`` and ``submitted_at`` columns; the JSON list that
    Canvas's submissions API returns (``user_id``, ``submitted_at``; the user id is the student id of a
    Canvas download); Moodle's grading worksheet (``Identifier`` ``Participant <id>`` and ``Last modified
    (submission)``; the participant id is the student id of a Moodle download). A student without a
    time (Canvas's ``null``, Moodle's ``-``) is left out.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
        if not isinstance(items, list) or not all(isinstance(i, dict) and "user_id" in i for i in items):
            raise InputError(f"{path}: expected the list that Canvas's submissions API returns "
                             "(objects with user_id and submitted_at)")
        return {str(i["user_id"]): str(i["submitted_at"]) for i in items if i.get("submitted_at")}
    table = list(csv.DictReader(text.splitlines()))
    columns = list(table[0]) if table else []
    if "student_id" in columns and "submitted_at" in columns:
        return {row["student_id"].strip(): row["submitted_at"].strip() for row in table
                if (row["student_id"] or "").strip() and (row["submitted_at"] or "").strip()}
    if "Identifier" in columns and "Last modified (submission)" in columns:
        return {row["Identifier"].strip().removeprefix("Participant ").strip(): row["Last modified (submission)"].strip()
                for row in table if (row["Last modified (submission)"] or "").strip() not in ("", "-")}
    raise InputError(f"{path}: no student_id and submitted_at columns (nor Moodle's Identifier and Last modified "
                     f"(submission)); its columns: {', '.join(columns) or 'none'}")
