"""The pages the grader writes itself (manual sheets, similarity, the class report) hold any student text:
escaped, isolated, cut when huge, and written whatever characters it holds. No kernel needed."""
from __future__ import annotations

import copy
import json

import nbformat
import pytest

import course_config as cfg
from autograder.grading import similarity
from autograder.marking import manual
from autograder.reports.class_report import table_cell

pytestmark = pytest.mark.fast

HOSTILE = '<script>document.title="owned"</script><img src=x onerror="window.pwned=1"><a href="javascript:alert(1)">x</a>'
AWKWARD = "lone \ud800 surrogate, NUL \x00, right-to-left \u202eevil\u202c, " + "a" * 50_000  # one very long line


def test_a_manual_sheet_shows_every_text_escaped_isolated_and_cut(tmp_path):
    rows = [manual.Answer("mallory", HOSTILE + AWKWARD, None, "=1+1 " + HOSTILE, False, "a note \ud800"),
            manual.Answer("reference", "Convex in lateness: $L(t) = t^2$, so | pipes | stay.", 1.0, "", False)]
    path = manual.write_page(tmp_path / "q.html", manual.page("q_better_loss", "**Why?** <script>alert(1)</script>",
                                                               "**Rubric (1 point).**\n\n- convex\n- a reason", rows))
    page = path.read_text(encoding="utf-8")
    assert "<script" not in page and "<img" not in page and "<a href" not in page and "<b>" not in page
    assert "&lt;script&gt;document.title=" in page  # the students' text, shown as text
    # the instructor's question and rubric are rendered from their Markdown, and cleaned as well
    assert "<strong>Why?</strong>" in page and "&lt;script&gt;alert(1)" in page and "<li>a reason</li>" in page
    assert "Convex in lateness: $L(t) = t^2$, so | pipes | stay." in page  # honest text, math as written
    assert "\ufffd" in page and "\u202eevil" in page  # repaired text is visible; right-to-left text kept...
    assert page.count('dir="auto"') >= 2 * len(rows)  # ...inside elements that isolate it
    assert "more characters not shown" in page and len(page) < 3 * cfg.SHOWN_TEXT_CHARS + 10_000


def test_a_manual_sheet_shows_the_figures_attached_to_the_release_question(tmp_path):
    """The release's questions show their figures as cell attachments (so that the notebook works alone on
    Colab); every sheet renders, and a question with a figure shows it embedded."""
    prompts = manual.questions()
    with_figure = [gid for gid, q in prompts.items() if "attachment:" in q.markdown]
    assert with_figure, "no free-response question of the release shows an attached figure"
    for gid, question in prompts.items():
        page = manual.page(gid, question, "**Rubric.**", [])
        assert "<h" in page or "<p>" in page, gid
    gid = with_figure[0]
    page = manual.page(gid, prompts[gid], "", [])
    assert '<img src="data:image/png;base64,' in page and "attachment:" not in page
    # a question whose figure is missing is an instructor's mistake: it stops with the figure's name
    broken = manual.Question(prompts[gid].markdown, {})
    try:
        manual.page(gid, broken, "", [])
    except Exception as error:  # nbconvert's InvalidNotebook
        assert "missing attachment" in str(error)
    else:
        raise AssertionError("a question without its figure rendered")


def test_the_similarity_page_names_left_out_and_repaired_students(tmp_path):
    reference = nbformat.read(cfg.REFERENCE_SUBMISSION, as_version=4)
    for name, text in [("mallory", AWKWARD), ("trudy", AWKWARD[:80])]:
        nb = copy.deepcopy(reference)
        similarity.answer_cells(nb)["q_good_descent"].source = text + " " + HOSTILE
        (tmp_path / f"{name}.ipynb").write_text(json.dumps(nb, ensure_ascii=True))  # "\ud800" spelled as JSON does
    (tmp_path / "broken.ipynb").write_text('{"cells": [')
    pairs = similarity.similarity_report([(s, tmp_path / f"{s}.ipynb") for s in ("mallory", "trudy", "broken")]
                                         + [("reference", cfg.REFERENCE_SUBMISSION)])
    assert {(p.student_a, p.student_b) for p in pairs} >= {("mallory", "trudy")}
    notes = " ".join(pairs.notes)
    assert "broken: left out" in notes and "mallory: \ufffd in its answers" in notes and "reference" not in notes
    page = similarity.write_similarity_html(pairs, tmp_path / "similarity.html").read_text(encoding="utf-8")
    assert "<script" not in page and "<img" not in page and "broken: left out" in page
    assert "more characters not shown" in page and '<pre dir="auto">' in page


def test_report_cells_are_one_line_and_storable():
    assert table_cell("a|b\nc\r\nd \ud800") == "a\\|b c d \ufffd"
    assert len(table_cell("x" * 1000)) == 300
