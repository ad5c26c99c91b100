"""The HTML pages the grader writes itself (manual-grading sheets, the similarity report).

Every page comes from a Jinja2 template in ``autograder/templates/`` rendered with autoescape on:
whatever a student wrote reaches the page as text, never as markup. Values pass ``storable`` first
(``autograder/text.py``), so no student's text can stop a page from being written; ``shown`` cuts
a text longer than ``course_config.SHOWN_TEXT_CHARS`` and says how much was left out. Templates
put each student's text in an element with ``dir="auto"``, which isolates right-to-left and
bidirectional control characters to that element.
"""
from __future__ import annotations

import functools
from pathlib import Path

import jinja2
from markupsafe import Markup

import course_config as cfg
from autograder.files import atomic_write
from autograder.text import storable

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _finalize(value: object) -> object:
    if isinstance(value, Markup):  # HTML the grader cleaned itself (manual.rendered): stays HTML
        return Markup(storable(str(value)))
    return storable(value) if isinstance(value, str) else value


def shown(text: str, limit: int | None = None) -> str:
    """``text`` cut to ``limit`` characters (``course_config.SHOWN_TEXT_CHARS``), with a line saying how many more there are."""
    limit = cfg.SHOWN_TEXT_CHARS if limit is None else limit
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... {len(text) - limit:,} more characters not shown]"


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, finalize=_finalize,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["shown"] = shown
    return env


def render(template: str, **context: object) -> str:
    """The page ``template`` (a file of ``autograder/templates/``) filled with ``context``, escaped."""
    return environment().get_template(template).render(**context)


def write_page(path: Path, page: str) -> Path:
    """Write ``page`` as UTF-8 through a temporary file: a reader never sees half a page."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, storable(page))
