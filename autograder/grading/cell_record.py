"""The grader's record of one run of a notebook: what ``GuardedExecute`` writes down about each cell.

The record (``record_path``, and ``resources["autograder"]`` for ``ScoreVerdicts``) holds the hidden
tests' verdicts, the grader's notes, each graded cell's time (the canary's set the time limits) and
the cells stopped at their time limit. It is written by the grader itself: nothing the kernel prints
is ever read as a score or a note. A note is also shown in its cell, for the feedback.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from nbformat.notebooknode import NotebookNode, from_dict

from autograder.grading import judge
from autograder.grading.results import NOTE_PREFIX
from autograder.notebook_code import nbgrader_meta


def note_output(text: str) -> NotebookNode:
    """A grader's note as it shows in the notebook (the record, not this output, is what counts)."""
    return from_dict({"output_type": "stream", "name": "stdout", "text": NOTE_PREFIX + text + "\n"})


def not_run_error(reason: str) -> NotebookNode:
    return from_dict({"output_type": "error", "ename": "CellNotRun", "evalue": reason,
                      "traceback": [f"CellNotRun: {reason}"]})


def cell_key(cell: NotebookNode, index: int) -> str:
    """How the record names a cell: its grade id, else its position."""
    return nbgrader_meta(cell).get("grade_id") or f"cell {index}"


class CellRecord:
    """A mixin of ``GuardedExecute``: ``_start_record`` before each run, ``_note`` during it,
    ``_finish`` at its end (it uses the executor's ``record_path``)."""

    def _start_record(self) -> None:
        self.notes: dict[str, list[str]] = {}
        self.verdicts: dict[str, judge.Verdict] = {}
        self.seconds: dict[str, float] = {}
        self.timeouts: set[str] = set()
        self.lost: set[str] = set()  # cells at which the kernel died (a submission's doing, or the machine's)

    def _note(self, cell: NotebookNode, index: int, text: str, *, first: bool = False, error: bool = False) -> None:
        """Record a note of the grader's on a cell, and show it there."""
        self.notes.setdefault(cell_key(cell, index), []).append(text)
        if error:
            cell.outputs = [not_run_error(text)]
        elif first:
            cell.outputs.insert(0, note_output(text))
        else:
            cell.outputs.append(note_output(text))

    def _finish(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        """Hand the verdicts to ``ScoreVerdicts`` and write the record."""
        record = {"verdicts": {gid: asdict(v) for gid, v in self.verdicts.items()}, "notes": self.notes,
                  "seconds": self.seconds, "timeouts": sorted(self.timeouts), "lost": sorted(self.lost)}
        resources = resources if resources is not None else {}
        resources["autograder"] = record
        if self.record_path:
            with open(self.record_path, "w") as file:
                json.dump(record, file, indent=1, sort_keys=True)
        return nb, resources
