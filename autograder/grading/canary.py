"""The canary: the reference solution, graded before (or beside) the first students of a run.

What it showed (``Canary``) and the decisions that schedule the students around it, as plain
functions of their inputs so that they can be tested without a kernel: whether it gets a core of
its own, which submissions grade beside it, whether its verdict raised the time limits, and which
of the submissions graded beside it grade again under the new limits.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import course_config as cfg
from autograder.errors import SetupError
from autograder.grading.results import GradeRow

CANARY_ID = "canary-reference"  # the reference solution, graded before any student
T = TypeVar("T")


class CanaryFailed(SetupError):
    """The reference solution did not earn full marks here: grading students would be wrong."""


@dataclass
class Canary:
    """What grading the reference here showed: its row and each cell's time on this machine."""
    row: GradeRow
    cell_seconds: dict[str, float]

    def cell_timeouts(self) -> dict[str, float]:
        """Each cell's limit: the larger of CELL_TIMEOUT_S and TIMEOUT_SCALE x its time here."""
        return {gid: max(float(cfg.CELL_TIMEOUT_S), cfg.TIMEOUT_SCALE * t) for gid, t in self.cell_seconds.items()}

    def slowest(self) -> tuple[str, float]:
        return max(self.cell_seconds.items(), key=lambda item: item[1], default=("", 0.0))

    def submission_timeout(self) -> float:
        """The submission's limit: the larger of SUBMISSION_TIMEOUT_S and TIMEOUT_SCALE x the reference's time."""
        return max(float(cfg.SUBMISSION_TIMEOUT_S), cfg.TIMEOUT_SCALE * self.row.seconds)


def has_own_slot(canary: bool, workers: int, cpus: int | None) -> bool:
    """Whether the canary gets a slot of its own: only when there is a core that no worker uses."""
    return canary and max(1, workers) < (cpus or 1)


def beside(todo: Sequence[T], workers: int, own_slot: bool) -> list[T]:
    """The submissions that grade while the canary runs: one per worker slot it leaves free."""
    return list(todo[:max(1, workers) - (not own_slot)])


def limits_grew(before: tuple[float, float], cell_timeouts: dict[str, float], submission_timeout: float) -> bool:
    """Whether the canary's verdict set longer limits than ``before`` (cell, submission) seconds."""
    cell, submission = before
    return submission_timeout > submission or any(t > cell for t in cell_timeouts.values())


def grade_again(row: GradeRow, longer: bool) -> bool:
    """A submission graded beside the canary grades again when the limits grew and it lost points."""
    return longer and row.score != row.max_score


def failure_message(row: GradeRow, auto_ids: list[str], *, isolation: str, device: str, log: str) -> str | None:
    """Why the reference fell short of full marks here (None: it earned them)."""
    if row.status == "graded" and row.score == row.max_score:
        return None
    lost = {cell: row.failed.get(cell, "; ".join(row.notes.get(cell, [])) or "0 points")
            for cell in auto_ids if row.cells.get(cell) != cfg.POINTS[cell]}
    why = row.status if row.status != "graded" else \
        f"{row.score:g}/{row.max_score:g}; " + "; ".join(f"{c}: {m}" for c, m in lost.items())
    return (f"the reference solution ({cfg.REFERENCE_SUBMISSION.name}) did not earn full marks "
            f"in this run's sandbox ({isolation}) on {device}: {why}. No student was "
            f"graded; nbgrader's log: {log}")
