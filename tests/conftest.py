"""Shared test setup: import the project from the repository root, put the venv on PATH."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.settings import venv_on_path  # noqa: E402

venv_on_path()  # nbgrader runs `alembic` from PATH when it creates a gradebook
