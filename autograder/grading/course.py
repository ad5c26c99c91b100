"""A scratch nbgrader course directory: source copied in, gradebook, nbgrader API.

nbgrader wants ``<root>/source/<assignment>/``, a gradebook and the folders it writes to.
Grading and release builds run in such a folder of their own, so the repository's
``source/`` is only ever read and no gradebook is left in the repository.
"""
from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path

from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory

import course_config as cfg
from autograder.errors import SetupError
from autograder.grading.settings import nbgrader_config, venv_on_path

log = logging.getLogger(__name__)


class NbgraderError(SetupError):
    """An nbgrader step failed; the message carries nbgrader's own log."""


@functools.cache
def alembic_head() -> str:
    """The newest revision of nbgrader's gradebook schema, read by alembic in this process."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    config = Config()
    config.set_main_option("script_location", ALEMBIC_DIR)
    return ScriptDirectory.from_config(config).get_current_head()


def answer_alembic_head_in_process() -> None:
    """nbgrader stamps each new gradebook with ``alembic heads`` run in a new interpreter: 1.9 s on
    2 cores, twice on the path of every grading run's start. The same answer costs 0.06 s here."""
    import nbgrader.api

    nbgrader.api.get_alembic_version = alembic_head


def make_course(root: Path, source: Path = cfg.SOURCE_DIR) -> NbGraderAPI:
    """Copy ``source/<assignment>`` under ``root`` and return an API bound to that course."""
    venv_on_path()
    answer_alembic_head_in_process()
    target = root / "source" / cfg.ASSIGNMENT_ID
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source / cfg.ASSIGNMENT_ID, target,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    config = nbgrader_config(root)
    Path(config.Exchange.root).mkdir(parents=True, exist_ok=True)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def run_step(result: dict, what: str) -> None:
    """Raise with nbgrader's log when an API call reports failure."""
    if not result.get("success"):
        raise NbgraderError(f"nbgrader {what} failed:\n{result.get('error') or ''}\n{result.get('log') or ''}")
    log.debug("nbgrader %s: %s", what, result.get("log"))


def generate_assignment(api: NbGraderAPI) -> Path:
    """Run ``generate_assignment`` (fills the gradebook too); return the release folder."""
    run_step(api.generate_assignment(cfg.ASSIGNMENT_ID, force=True, create=True), "generate_assignment")
    return Path(api.coursedir.root) / api.coursedir.release_directory / cfg.ASSIGNMENT_ID
