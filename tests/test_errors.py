"""The command line's two kinds of reported error (``autograder/errors.py``), and every other one shown as a bug."""
from __future__ import annotations

import pytest

from autograder.__main__ import main
from autograder.data import DataError
from autograder.errors import InputError, SetupError
from autograder.grading import shards
from autograder.grading.canary import CanaryFailed
from autograder.grading.course import NbgraderError
from autograder.grading.results import GraderFault
from autograder.grading.submissions import SubmissionsError
from autograder.grading.warm import ZygoteFailure
from autograder.marking.manual import ManualImportError

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("error, kind, builtin", [
    (SubmissionsError, InputError, ValueError), (ManualImportError, InputError, ValueError),
    (DataError, SetupError, RuntimeError), (NbgraderError, SetupError, RuntimeError),
    (CanaryFailed, SetupError, RuntimeError), (GraderFault, SetupError, RuntimeError),
    (ZygoteFailure, SetupError, RuntimeError)])
def test_the_projects_errors_are_one_of_the_two_kinds_and_keep_their_builtin_base(error, kind, builtin):
    assert issubclass(error, kind) and issubclass(error, builtin)


def test_bad_input_is_one_line_and_exit_status_2(capsys, tmp_path):
    status = main(["grade", str(tmp_path), "--out", str(tmp_path / "out"), "--shard", "5/2"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: shard index 5 is outside 0..1") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_missing_gradebook_is_named_with_the_command_that_makes_it(capsys, tmp_path):
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "lms.csv")]) == 2
    assert f"{tmp_path / 'gradebook.db'}: no class gradebook; grade into {tmp_path} first" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    def broken(spec):
        raise ValueError("a bug, not the user's input")
    monkeypatch.setattr(shards, "parse_shard", broken)
    with pytest.raises(ValueError, match="a bug"):  # not turned into "error: ..." and status 2
        main(["grade", str(tmp_path), "--out", str(tmp_path / "out"), "--shard", "0/1"])
