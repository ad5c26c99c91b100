"""The notes on a notebook graded a second time (``worker.add_second_grading_notes``): what made the
worker grade it again, and what the second grading, the one kept, saw."""
from __future__ import annotations

import pytest

from autograder.grading.results import WorkerResult
from autograder.grading.worker import add_second_grading_notes

pytestmark = pytest.mark.fast


def graded_twice(first: dict, second: dict) -> WorkerResult:
    kept = WorkerResult("s", **second)
    add_second_grading_notes(WorkerResult("s", **first), kept)
    assert kept.retried
    return kept


FIRST_DEATH = "ex1_memory lost the kernel (it died), so the notebook was graded a second time"


def test_a_kernel_that_died_once_is_named_and_the_second_grading_says_nothing_more():
    kept = graded_twice({"lost": ["ex1_memory"]}, {})
    assert kept.notes == {"ex1_memory": [FIRST_DEATH]}


def test_a_kernel_that_died_again_at_the_same_cell_says_so():
    kept = graded_twice({"lost": ["ex1_memory"]}, {"lost": ["ex1_memory"]})
    assert kept.notes["ex1_memory"] == [FIRST_DEATH + "; the kernel died there again"]


def test_a_death_at_another_cell_in_the_second_grading_is_explained_where_it_happened():
    kept = graded_twice({"lost": ["ex1_memory"]}, {"lost": ["ex3_momentum_update"]})
    assert kept.notes["ex1_memory"] == [FIRST_DEATH]
    assert kept.notes["ex3_momentum_update"] == [
        FIRST_DEATH + "; in the second grading, which counts, ex3_momentum_update lost the kernel"]


def test_a_time_limit_then_a_death_elsewhere():
    kept = graded_twice({"timeouts": ["ex2_bn_models_convergence"]}, {"lost": ["ex1_memory"]})
    timed_out = "ex2_bn_models_convergence ran past the time limit, so the notebook was graded a second time"
    assert kept.notes["ex1_memory"] == [timed_out + "; in the second grading, which counts, ex1_memory lost the kernel"]
    assert list(kept.notes) == ["ex2_bn_models_convergence", "ex1_memory"]
