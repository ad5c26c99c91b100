"""The late policy of ``course_config``: when a submission came in, and what lateness costs.

A submission's time comes from nbgrader's ``timestamp.txt`` (a ``submitted/`` tree) or from the
``timestamp`` group of an LMS zip's file names. A time that is missing or cannot be read is not
taken as on time: ``Lateness.problem`` says so, and the export flags the student.

Penalty: each started ``LATE_PENALTY_UNIT`` after the due date costs ``LATE_PENALTY_PER_UNIT`` of
the maximum score, at most ``LATE_PENALTY_CAP`` of it, and never more than the student earned.
A submission within ``LATE_GRACE_MINUTES`` of the due date is on time.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import course_config as cfg

UNIT_SECONDS = {"day": 86400, "hour": 3600}
TIMESTAMP_FILE = "timestamp.txt"  # nbgrader's name, beside the notebook in submitted/<student>/<assignment>/
# nbgrader's own format ("2026-10-16 23:58:01.123456 UTC"), ISO 8601, and the dashed form of
# nbgrader's zip_collect example ("2026-10-16-23-58-01")
_DASHED = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})(?:-(\d{2}))?$")


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
    candidate = raw
    zone = None
    if raw.endswith((" UTC", " GMT", "Z")):  # nbgrader writes "... UTC"
        candidate, zone = raw.removesuffix(" UTC").removesuffix(" GMT").removesuffix("Z"), timezone.utc
    try:
        when = datetime.fromisoformat(candidate)
    except ValueError:
        raise ValueError(f"unreadable submission time {raw!r} (expected e.g. '2026-10-16 23:58:01 UTC', "
                         "'2026-10-16T23:58:01-04:00' or '2026-10-16-23-58-01')") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone or course_zone())
    return when


@dataclass(frozen=True)
class Lateness:
    submitted: datetime | None
    seconds_late: float  # 0 when on time (grace included) or unknown
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
    if cfg.LATE_PENALTY_UNIT not in UNIT_SECONDS:
        raise ValueError(f"course_config.LATE_PENALTY_UNIT must be one of {sorted(UNIT_SECONDS)}, "
                         f"not {cfg.LATE_PENALTY_UNIT!r}")
    for name in ("LATE_PENALTY_PER_UNIT", "LATE_PENALTY_CAP"):
        if not 0 <= getattr(cfg, name) <= 1:
            raise ValueError(f"course_config.{name} is a share of the maximum score, from 0 to 1")
    due_date()


def lateness(submitted: datetime | None, score: float, max_score: float, *, extension: timedelta | None = None,
             problem: str | None = None) -> Lateness:
    """The lateness and penalty of a submission made at ``submitted`` that earned ``score``.

    ``extension``: the student's extension (nbgrader's ``grant_extension``), added to the due date.
    """
    if submitted is None:
        return Lateness(None, 0.0, 0, 0.0, problem or "submission time unknown: no late penalty applied, check it")
    late = (submitted - due_date() - (extension or timedelta())).total_seconds()
    if late <= timedelta(minutes=cfg.LATE_GRACE_MINUTES).total_seconds():
        return Lateness(submitted, 0.0, 0, 0.0)
    units = math.ceil(late / UNIT_SECONDS[cfg.LATE_PENALTY_UNIT])
    share = min(cfg.LATE_PENALTY_CAP, units * cfg.LATE_PENALTY_PER_UNIT)
    return Lateness(submitted, late, units, round(min(max(score, 0.0), share * max_score), 4))
