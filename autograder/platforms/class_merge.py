"""The class folder from the folders of sharded runs, as ``grade --out DIR`` writes it for one run.

Used by the ``merge`` command (after Kubernetes' or any other shards) and by the Slurm merge job:
grades.csv and feedback (``grading/shards.py``), the class report, the class gradebook and the
similarity report. It lives here, not in ``grading/shards.py``: the class report is a ``reports/``
step, which the ``grading/`` layer may not import.
"""
from __future__ import annotations

from pathlib import Path

from autograder.grading.grade import merge_gradebooks
from autograder.grading.shards import merge, read_grades
from autograder.grading.submissions import repair_notes
from autograder.reports.class_report import write_class_report


def merge_class(shard_dirs: list[Path], dest: Path) -> Path:
    """Merge ``shard_dirs`` into ``dest`` (grades.csv, feedback, report, gradebook, similarity); return
    ``dest/grades.csv``."""
    shard_dirs, dest = [Path(d) for d in shard_dirs], Path(dest)
    path = merge(shard_dirs, dest)
    students = {row[0] for row in read_grades(path)[1]}
    write_class_report(path, dest, notes=repair_notes(shard_dirs, students))
    merge_gradebooks(shard_dirs, dest)
    return path
