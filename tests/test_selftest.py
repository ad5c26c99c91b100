"""`python -m autograder selftest`: the reference gets full marks, the blank zero, every mutant
loses points exactly on the cells its mistake is in, and the convergence thresholds hold for
every calibration seed on this device. This is the suite's one grading of the mutant corpus.
"""
from __future__ import annotations

import pytest

from autograder.selftest import run_selftest

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def test_selftest_finds_no_surprise(tmp_path):
    ok, report = run_selftest(workers=2, out=tmp_path / "out")
    print(report)
    assert ok, report
    assert "no surprise" in report and "all seeds pass" in report
