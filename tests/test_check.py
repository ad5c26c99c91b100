"""`python -m autograder check`: the student's pre-submission check, on real notebooks."""
from __future__ import annotations

import pytest

import course_config as cfg
from autograder.check import check

EXAMPLES = cfg.EXAMPLES_DIR
MUTANTS = cfg.ROOT / "tests" / "mutants"
pytestmark = pytest.mark.kernel


def verdicts(path) -> dict:
    return {v.grade_id: v for v in check(path)}


def test_reference_passes_every_visible_test():
    found = verdicts(EXAMPLES / "reference.ipynb")
    assert all(v.ok for v in found.values()), [v for v in found.values() if not v.ok]


def test_blank_release_lists_what_is_left_to_do():
    found = verdicts(EXAMPLES / "blank.ipynb")
    assert not any(v.ok for v in found.values())
    assert found["ex1_memory"].message.startswith("not attempted yet")
    assert found["q_bn_learnable_ab"].message == "still empty"


@pytest.mark.parametrize("mutant, cell, message", [
    ("ex2_bndeepnet_three_batchnorms", "test_ex2_bn_models_structure",
     "BNDeepNet has 3 BatchNorm1d layers; the exercise asks for one after each of the 4 hidden linear layers"),
    ("ex2_softmax_instead_of_log_softmax", "test_ex2_bn_models_structure", "should return log-probabilities"),
    ("ex3_in_place_update", "test_ex3_momentum_update", "momentum_update changed its input"),
])
def test_a_visible_mistake_is_named(mutant, cell, message):
    found = verdicts(MUTANTS / f"{mutant}.ipynb")
    assert not found[cell].ok and message in found[cell].message, found[cell]
    others = [v for gid, v in found.items() if v.kind == "test" and gid != cell]
    assert all(v.ok for v in others), [v for v in others if not v.ok]


def test_a_hidden_only_mistake_is_not_revealed():
    found = verdicts(MUTANTS / "ex2_batchnorm_after_relu.ipynb")
    assert all(v.ok for v in found.values() if v.kind == "test")
