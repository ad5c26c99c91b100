"""The canary's record and the scheduling around it (``autograder/grading/canary.py``), without a kernel."""
from __future__ import annotations

import pytest

import course_config as cfg
from autograder.grading import canary
from autograder.grading.results import GradeRow, graded_cells

pytestmark = pytest.mark.fast
AUTO, MANUAL = graded_cells()


def row(score: float, *, status: str = "graded", seconds: float = 10.0, lost: str | None = None) -> GradeRow:
    cells = {gid: float(cfg.POINTS[gid]) for gid in AUTO}
    failed = {}
    if lost:
        cells[lost], failed[lost] = 0.0, "AssertionError: wrong"
    result = GradeRow("canary-reference", score, sum(cfg.POINTS[g] for g in AUTO), cells, status, failed, {})
    result.seconds = seconds
    return result


FULL = sum(cfg.POINTS[g] for g in AUTO)


def test_a_cell_limit_is_the_configured_one_or_scaled_from_the_reference_whichever_is_larger():
    record = canary.Canary(row(FULL), {"fast": 0.1, "slow": 1000.0})
    limits = record.cell_timeouts()
    assert limits["fast"] == float(cfg.CELL_TIMEOUT_S)
    assert limits["slow"] == cfg.TIMEOUT_SCALE * 1000.0
    assert record.slowest() == ("slow", 1000.0)
    assert canary.Canary(row(FULL), {}).slowest() == ("", 0.0)


def test_the_submission_limit_scales_with_the_reference_time():
    assert canary.Canary(row(FULL, seconds=0.0), {}).submission_timeout() == float(cfg.SUBMISSION_TIMEOUT_S)
    slow = 10 * cfg.SUBMISSION_TIMEOUT_S
    assert canary.Canary(row(FULL, seconds=slow), {}).submission_timeout() == cfg.TIMEOUT_SCALE * slow


@pytest.mark.parametrize("workers, cpus, own", [(1, 2, True), (2, 2, False), (4, 2, False), (0, 2, True),
                                                (1, 1, False), (1, None, False)])
def test_the_canary_has_a_slot_of_its_own_only_on_a_spare_core(workers, cpus, own):
    assert canary.has_own_slot(True, workers, cpus) is own
    assert canary.has_own_slot(False, workers, cpus) is False


@pytest.mark.parametrize("workers, own, expected", [(1, True, ["a"]), (1, False, []), (3, False, ["a", "b"]),
                                                    (3, True, ["a", "b", "c"]), (8, True, ["a", "b", "c", "d"])])
def test_the_submissions_beside_the_canary_fill_the_slots_it_leaves(workers, own, expected):
    assert canary.beside(["a", "b", "c", "d"], workers, own) == expected


def test_limits_grew_only_when_a_limit_is_longer_than_before():
    before = (60.0, 600.0)
    assert not canary.limits_grew(before, {"a": 60.0, "b": 30.0}, 600.0)
    assert canary.limits_grew(before, {"a": 60.1}, 600.0)
    assert canary.limits_grew(before, {}, 600.5)


def test_only_a_submission_that_lost_points_under_shorter_limits_grades_again():
    assert canary.grade_again(row(FULL - 1, lost=AUTO[0]), longer=True)
    assert not canary.grade_again(row(FULL - 1, lost=AUTO[0]), longer=False)
    assert not canary.grade_again(row(FULL), longer=True)


def test_a_reference_with_full_marks_passes_and_one_short_of_them_is_named_with_its_cell():
    where = dict(isolation="sandbox", device="cpu", log="/out/canary.log")
    assert canary.failure_message(row(FULL), AUTO, **where) is None
    message = canary.failure_message(row(FULL - cfg.POINTS[AUTO[0]], lost=AUTO[0]), AUTO, **where)
    assert f"{AUTO[0]}: AssertionError: wrong" in message and "sandbox (sandbox) on cpu" in message
    assert message.endswith("/out/canary.log")
    crashed = canary.failure_message(row(0.0, status="error: kernel died"), AUTO, **where)
    assert ": error: kernel died. No student was graded" in crashed
