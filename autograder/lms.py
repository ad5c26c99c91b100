"""Column layouts of the learning-management systems' grade imports: the one place they live.

Adding an LMS is adding an entry to ``LMS_FORMATS`` (``course_config.LMS`` picks one).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LmsFormat:
    identity: tuple[str, ...]  # the LMS's identity columns, in order, copied from its roster when given
    key: str  # the identity column that holds our student id (matched against the roster)
    name: str  # the identity column that shows the student's name (our id when there is no roster)
    points_row: str | None  # first cell of a "points possible" row under the header, if the LMS has one


LMS_FORMATS: dict[str, LmsFormat] = {
    # Canvas: Grades > Import; rows match on ID, SIS User ID or SIS Login ID; a blank score changes nothing
    "canvas": LmsFormat(identity=("Student", "ID", "SIS User ID", "SIS Login ID", "Section"), key="SIS Login ID",
                        name="Student", points_row="    Points Possible"),
}


def lms_format(name: str) -> LmsFormat:
    if name not in LMS_FORMATS:
        raise ValueError(f"course_config.LMS is {name!r}; autograder/lms.py knows {sorted(LMS_FORMATS)}")
    return LMS_FORMATS[name]
