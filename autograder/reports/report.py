"""Print grading results for a person: the summary table of ``grade``."""
from __future__ import annotations

from autograder.grading.results import GradeRow


def short_id(grade_id: str) -> str:
    """Column title: the grade id without its ``test_`` prefix."""
    return grade_id.removeprefix("test_")


def summary_table(rows: list[GradeRow], auto_ids: list[str]) -> str:
    """Fixed-width table: one line per student, autograded cells, total, status."""
    header = ["student", *[short_id(g) for g in auto_ids], "score", "status"]
    lines = []
    for row in sorted(rows, key=lambda r: r.student_id):
        cells = ["-" if row.cells.get(g) is None else f"{row.cells[g]:g}" for g in auto_ids]
        status = row.status if len(row.status) <= 90 else row.status[:87] + "..."
        score = "-" if row.score is None else f"{row.score:g}"
        lines.append([row.student_id, *cells, f"{score}/{row.max_score:g}", status])
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header) - 1)]
    def fmt(line: list[str]) -> str:
        return "  ".join(str(v).ljust(w) for v, w in zip(line, widths)) + "  " + line[-1]
    rule = "-" * len(fmt(header))
    return "\n".join([fmt(header), rule, *map(fmt, lines)])
