"""Shared test setup: import the project from the repository root, put the venv on PATH."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.grading.settings import venv_on_path  # noqa: E402

venv_on_path()  # nbgrader runs `alembic` from PATH when it creates a gradebook


def copy_repository(dest: Path) -> Path:
    """What a fresh ``git clone`` of this tree holds (tracked and new files, nothing ignored) at ``dest``.

    Tests that must run from a clone use this: unlike ``git clone``, it includes the work not yet
    committed, so the suite tests the tree it runs in.
    """
    import shutil
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="session")
def repository_copy():
    """The ``copy_repository`` function, for tests that need a clone of their own."""
    return copy_repository
