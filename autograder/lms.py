"""What each learning-management system writes and reads: the one place it lives.

``course_config.LMS`` picks one entry of ``LMS_FORMATS``; adding an LMS is adding an entry. Each
entry says three things, taken from the LMS's own code and documentation:

- **the names in its submissions download** (``download``, a regular expression matched against
  each zip member's whole path, from the zip's root). The LMS writes its own fields first and the
  name the student chose when uploading last, so every pattern reads the LMS's fields from the
  left, each field of a kind the LMS writes (digits for ids, the name without ``_``), and leaves
  the rest to ``file``: no upload name can set a student id or a time.

  - Canvas (``ContentZipper``): ``<name>[_LATE]_<user id>_<file id>_<uploaded name>``. The name is
    the student's sortable name in lower case with every character that is not a letter, digit
    or ``_`` removed (``Smith, Alice`` -> ``smithalice``; accents stay); ``LATE`` marks a
    submission Canvas counts as late; the file id grows with every upload, and a file uploaded
    again under the same name gets ``-1``, ``-2``... before its extension
    (``W4_Tutorial1-1.ipynb``). The highest file id of a student is their latest upload.
    A name that holds ``_`` is not read (it could hide a second user id), nor anonymous
    grading's ``anon_<id>``.
  - Moodle (``mod/assign``, *Download all submissions*):
    ``<Full Name>_<participant id>_assignsubmission_file_<uploaded name>``, or with *download
    submissions in folders* (the default since Moodle 3.1)
    ``<Full Name>_<participant id>_assignsubmission_file/<uploaded name>``. Moodle turns ``_``
    in the name into a space, so the first ``_`` ends it; the participant id is the number of
    the grading worksheet's ``Identifier`` (``Participant 123456``).
  - Blackboard (*Download Assignment*):
    ``<assignment name>_<username>_attempt_<YYYY-MM-DD-HH-MM-SS>[_<uploaded name>]``. The first
    ``_attempt_<time>_`` after the username is the attempt's; one the student wrote in the
    upload name comes after it and is never read.

- **its gradebook export** (the roster given to ``export --roster``): the columns that identify a
  student (``keys``: the id in the download's names first, then the others), the one that
  shows the name, the Test Student, and how the assignment's column is spelled.
- **its grade import**: the columns of the upload file, the "points possible" row, quoting.

Sources: Canvas's ``lib/content_zipper.rb`` and gradebook import (a column named
``<assignment> (<id>)`` updates that assignment; one it does not know creates a new one),
Moodle's ``mod/assign/classes/downloader.php`` and ``assignfeedback_offline`` (the worksheet's
``Identifier``, ``Grade`` and ``Last modified (grade)`` columns), Blackboard's *Working offline
with the Grade Center* (``Username`` and a column ``<name> [Total Pts: <n> Score] |<id>``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import course_config as cfg
from autograder.errors import InputError

ATTEMPT_TIME = r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}"  # Blackboard's attempt time; late.parse_time reads it


@dataclass(frozen=True)
class RosterKey:
    """A roster column that identifies a student, and how it spells our student id (``{}``)."""
    column: str
    spelling: str = "{}"

    def cell(self, student_id: str) -> str:
        return self.spelling.format(student_id)


@dataclass(frozen=True)
class LmsFormat:
    label: str  # the LMS's name, for messages
    download: re.Pattern[str]  # one zip member's path; groups student_id, and name, late, order, timestamp, file
    download_shape: str  # the names in words, for messages
    identity: tuple[str, ...]  # identity columns of the import file without a roster, in order
    keys: tuple[RosterKey, ...]  # roster columns that identify a student; the first holds the download's id
    folder_key: RosterKey  # without a roster, the column that holds a student id that is not the download's
    name: str  # the column that shows the student's name
    score: str  # how the assignment's column is spelled: "{column}" is course_config.LMS_ASSIGNMENT_COLUMN
    score_in_roster: str  # a regular expression of the assignment's column in the roster (same placeholder)
    score_shape: str  # that column in words, for messages (same placeholder)
    points_row: str | None = None  # first cell of a "points possible" row under the header, if the LMS has one
    copy_roster: bool = False  # the upload is the roster itself, every column kept (Moodle's worksheet)
    fixed: dict[str, str] = field(default_factory=dict)  # columns the import needs, with the value they hold
    test_students: tuple[tuple[str, str], ...] = ()  # (column, regular expression): the LMS's own test user
    quote_all: bool = False  # every cell in quotes (Blackboard's rule for comma-separated files)
    late_marker: bool = False  # the download's names mark late submissions (group ``late``)

    @property
    def key(self) -> str:
        """The roster column that holds the id of the download's names."""
        return self.keys[0].column

    def score_column(self) -> str:
        """The assignment's column as this file writes it when no roster says more."""
        return self.score.format(column=cfg.LMS_ASSIGNMENT_COLUMN)

    def roster_column(self) -> re.Pattern[str]:
        return re.compile(self.score_in_roster.format(column=re.escape(cfg.LMS_ASSIGNMENT_COLUMN)))

    def is_test_student(self, row: dict[str, str]) -> bool:
        return any(re.fullmatch(pattern, (row.get(column) or "").strip()) for column, pattern in self.test_students)


LMS_FORMATS: dict[str, LmsFormat] = {
    # Canvas: Grades > Export / Import; rows match on ID, SIS User ID, SIS Login ID or Integration ID; a blank
    # score changes nothing; the second row of its export is "Points Possible"
    "canvas": LmsFormat(
        label="Canvas",
        download=re.compile(r"(?P<name>[^\W_]+)(?:_(?P<late>LATE|late))?_(?P<student_id>\d+)_(?P<order>\d+)"
                            r"_(?P<file>[^/]+)"),
        download_shape="<name>[_LATE]_<user id>_<file id>_<uploaded name> (smithalice_12345_67890_W4_Tutorial1.ipynb)",
        identity=("Student", "ID", "SIS User ID", "SIS Login ID", "Section"),
        keys=(RosterKey("ID"), RosterKey("SIS Login ID"), RosterKey("SIS User ID"), RosterKey("Integration ID")),
        folder_key=RosterKey("SIS Login ID"),
        name="Student", score="{column}", score_in_roster=r"{column} \((?P<id>\d+)\)", score_shape="{column} (<id>)",
        points_row="    Points Possible",
        test_students=(("Student", r"Student, Test|Test Student"),), late_marker=True),
    # Moodle: Assignment > View all submissions > Download grading worksheet / Upload grading worksheet; the
    # worksheet is per assignment, its Identifier column matches the participant id of the download's names
    "moodle": LmsFormat(
        label="Moodle",
        download=re.compile(r"(?P<name>[^_/]+)_(?P<student_id>\d+)_assignsubmission_file[_/](?P<file>.+)"),
        download_shape="<Full Name>_<participant id>_assignsubmission_file_<uploaded name>, or the same as a folder "
                       "(Alice Smith_123456_assignsubmission_file/W4_Tutorial1.ipynb)",
        identity=("Identifier", "Full name"),
        keys=(RosterKey("Identifier", "Participant {}"), RosterKey("ID number"), RosterKey("Email address"),
              RosterKey("Username")),
        folder_key=RosterKey("Identifier", "Participant {}"),
        name="Full name", score="Grade", score_in_roster="Grade", score_shape="Grade", copy_roster=True,
        fixed={"Last modified (grade)": ""}),
    # Blackboard Learn: Grade Center > Work Offline > Download / Upload; rows match on Username; a column without
    # its "|<id>" is created as a new text column
    "blackboard": LmsFormat(
        label="Blackboard",
        download=re.compile(rf"(?P<assignment>[^_/]+)_(?P<student_id>[^/]+?)_attempt_(?P<timestamp>{ATTEMPT_TIME})"
                            r"(?:_(?P<file>[^/]+))?"),
        download_shape="<assignment>_<username>_attempt_<YYYY-MM-DD-HH-MM-SS>_<uploaded name> "
                       "(W4 Optimization_asmith_attempt_2026-10-16-23-58-01_W4_Tutorial1.ipynb)",
        identity=("Last Name", "First Name", "Username"),
        keys=(RosterKey("Username"), RosterKey("Student ID")),
        folder_key=RosterKey("Username"),
        name="Last Name", score="{column}",
        score_in_roster=r"{column} \[Total Pts: (?:up to )?(?P<points>[0-9.]+)[^\]]*\] \|(?P<id>\d+)",
        score_shape="{column} [Total Pts: <points> Score] |<id>",
        test_students=(("Username", r".*_previewuser"),), quote_all=True),
}


def lms_format(name: str | None = None) -> LmsFormat:
    """The layout of ``name`` (default ``course_config.LMS``); ``ValueError`` naming the ones known."""
    name = cfg.LMS if name is None else name
    if name not in LMS_FORMATS:
        raise InputError(f"course_config.LMS is {name!r}; autograder/lms.py knows {sorted(LMS_FORMATS)}")
    return LMS_FORMATS[name]


def download_pattern() -> tuple[re.Pattern[str], str]:
    """The pattern of this course's download names, and where it comes from (for messages).

    ``course_config.ZIP_FILENAME_REGEXP``, when set, replaces the LMS's own: it needs a ``student_id``
    group and is matched from the start of each member's path; it may not start with ``.*`` or ``.+``,
    which would let the end of a name, the part a student chooses, give the student id.
    """
    custom = getattr(cfg, "ZIP_FILENAME_REGEXP", None)
    if not custom:
        layout = lms_format()
        return layout.download, f"course_config.LMS = {cfg.LMS!r} ({layout.label}: {layout.download_shape})"
    try:
        pattern = re.compile(custom)
    except re.error as error:
        raise InputError(f"course_config.ZIP_FILENAME_REGEXP is not a regular expression: {error}") from None
    if "student_id" not in pattern.groupindex:
        raise InputError("course_config.ZIP_FILENAME_REGEXP needs a (?P<student_id>...) group")
    if custom.lstrip("^").startswith((".*", ".+")):
        raise InputError("course_config.ZIP_FILENAME_REGEXP starts with '.*' or '.+': the student id would be read "
                         "from the end of the name, which the student chooses when uploading. Read the LMS's fields "
                         "from the left (e.g. '(?P<student_id>[^_]+)_...'), or use course_config.LMS's own pattern")
    return pattern, f"course_config.ZIP_FILENAME_REGEXP = {custom!r}"


def read_download_name(path: str) -> dict[str, str] | None:
    """The fields of one zip member's path (``student_id``, and ``name``, ``late``, ``order``,
    ``timestamp``, ``file`` where the LMS writes them), or None when it is not a name of this LMS."""
    pattern, _ = download_pattern()
    found = pattern.fullmatch(path) if not getattr(cfg, "ZIP_FILENAME_REGEXP", None) else pattern.match(path)
    if found is None or not found.group("student_id"):
        return None
    return {key: value for key, value in found.groupdict().items() if value is not None}
