"""Atomic writes (``autograder/files.py``): the old file or the new one, never half, never a leftover."""
from __future__ import annotations

import pytest

from autograder.files import atomic_path, atomic_write

pytestmark = pytest.mark.fast


def test_a_file_is_replaced_whole_and_no_temporary_file_stays(tmp_path):
    path = tmp_path / "grades.csv"
    atomic_write(path, "old\n")
    assert atomic_write(path, "né\n") == path
    assert path.read_text(encoding="utf-8") == "né\n" and [p.name for p in tmp_path.iterdir()] == ["grades.csv"]
    atomic_write(path, b"\x00bytes")
    assert path.read_bytes() == b"\x00bytes"


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "results.json"
    atomic_write(path, "{}")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("{half")
        raise RuntimeError("disk full")
    assert path.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["results.json"]
