"""Final feedback for students: their hand-graded points and the TA's comments, the late penalty, the total.

    python -m autograder feedback RUN_DIR [--times FILE]

The autograded feedback that ``grade`` writes (``RUN_DIR/feedback/<student>.html``) comes before any
hand grading. Once the free-response answers are graded (formgrader or ``manual-import``), this step
runs nbgrader's ``generate_feedback`` in the class course ``RUN_DIR`` for each student whose grade is
final (``export``'s rule: every answer graded, no grader fault, the submission time known under the
course's late policy), through this course's chain (``autograder/grading/settings.py``):

- ``GetGrades`` (nbgrader's) puts each cell's score and the TA's comment from the gradebook, and the
  late penalty that ``export.final_grades`` stores there, into the page and its header's total;
- ``AddFinalSummary`` (``autograder/grading/preprocessors.py``) puts a first cell with the final score and how it adds up: autograded,
  graded by hand, the late penalty and why;
- ``StripGraderOnly``, ``StripHiddenTests`` and ``RedactTestTracebacks`` keep the rubric and every hidden
  test out of the page.

Each page is ``RUN_DIR/final_feedback/<student>.html``; a student who is not final, or whose submission
could not be graded at all (no autograded notebook), gets none (an older page of theirs is removed) and
is listed with the reason. ``RUN_DIR/final.csv`` is written too.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import course_config as cfg
from autograder.late import course_zone

SCRATCH = ".course/final_feedback"  # nbgrader's feedback layout (<student>/<assignment>/<notebook>.html), in the run


def summary_markdown(grade) -> str:
    """The summary of one ``export.FinalGrade``: final score, its parts, the lateness."""
    from autograder.grading.results import graded_cells

    auto_ids, manual_ids = graded_cells()
    auto = sum(grade.cells.get(c) or 0.0 for c in auto_ids)
    manual = sum(grade.cells.get(c) or 0.0 for c in manual_ids)
    auto_max = sum(cfg.POINTS[c] for c in auto_ids)
    manual_max = sum(cfg.POINTS[c] for c in manual_ids)
    if cfg.LATE_POLICY == "lms":
        late = "lateness: the course's LMS applies its own late policy to this score"
    elif grade.late.units:
        when = grade.late.submitted.astimezone(course_zone()).strftime("%Y-%m-%d %H:%M %Z")
        late = (f"late penalty -{grade.late.penalty:g}: submitted {when}, {grade.late.units} "
                f"{cfg.LATE_PENALTY_UNIT}(s) after the due date ({cfg.DUE_DATE} {cfg.COURSE_TIMEZONE})")
    else:
        late = "submitted on time: no late penalty"
    return (f"**Final score: {grade.score:g} / {grade.max_score:g}**\n\n"
            f"- autograded: {auto:g} / {auto_max:g}\n- graded by hand: {manual:g} / {manual_max:g}\n- {late}\n\n"
            "Each answer below shows its score and, where there is one, the grader's comment.")


@dataclass
class FinalFeedback:
    pages: list[Path]
    withheld: dict[str, str] = field(default_factory=dict)  # student id -> why no page
    grades: list = field(default_factory=list)
    final_csv: Path | None = None


def write_final_feedback(run: Path, *, times: Path | list[Path] | None = None) -> FinalFeedback:
    """Final feedback pages of every final student of ``run`` (see the module's docstring)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from autograder.grading.course import run_step
    from autograder.marking.export import FINAL_CSV, final_grades, write_final_csv
    from autograder.grading.gradebook import FINAL_FEEDBACK, course_path
    from autograder.grading.settings import nbgrader_config, venv_on_path

    run = Path(run).resolve()
    grades = final_grades(run, times=times)  # stores the late penalties that GetGrades reads
    withheld = {g.student_id: "; ".join(g.flags) for g in grades if not g.final}
    for g in grades:  # a submission that could not be graded (not a notebook...) has no page to show
        if g.final and not (course_path(run, "autograded", g.student_id) / f"{cfg.NOTEBOOK_NAME}.ipynb").is_file():
            withheld[g.student_id] = f"no autograded notebook ({g.status}); its score is {g.score:g}"
    final = [g for g in grades if g.student_id not in withheld]
    config = nbgrader_config(run)
    config.CourseDirectory.feedback_directory = SCRATCH
    config.AddFinalSummary.summaries = {g.student_id: summary_markdown(g) for g in final}
    venv_on_path()
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    out = run / FINAL_FEEDBACK
    out.mkdir(exist_ok=True)
    pages = []
    for g in final:
        run_step(api.generate_feedback(cfg.ASSIGNMENT_ID, g.student_id, force=True),
                 f"generate_feedback for {g.student_id}")
        made = run / SCRATCH / g.student_id / cfg.ASSIGNMENT_ID / f"{cfg.NOTEBOOK_NAME}.html"
        pages.append(Path(shutil.copyfile(made, out / f"{g.student_id}.html")))
    for student in withheld:
        (out / f"{student}.html").unlink(missing_ok=True)  # a page from before it was flagged is no longer right
    shutil.rmtree(run / SCRATCH, ignore_errors=True)
    return FinalFeedback(pages, withheld, grades, write_final_csv(grades, run / FINAL_CSV))
