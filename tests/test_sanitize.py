"""Student markdown and HTML are inert in every HTML export and in the graders' stored copy, and honest
work reads as it was written (no kernel: the notebooks are built here and exported as nbgrader does)."""
from __future__ import annotations

import base64
import copy
import html.parser
import os
import time

import nbformat
import nbgrader
import pytest
from nbconvert import HTMLExporter
from nbformat.v4 import new_markdown_cell, new_output

import course_config as cfg
from autograder import sanitize
from autograder.grading.gradebook import rubrics
from autograder.grading.settings import nbgrader_config

PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d"
                                     "4944415478da63f8ffff3f0005fe02fea7d6a4b50000000049454e44ae426082")).decode()
# every payload names window.pwned: a page is safe when nothing of it can run
ATTACKS = [
    '<script>window.pwned = 1; document.title = "pwned"</script>',
    '<img src=x onerror="window.pwned = 2">',
    '<a href="javascript:window.pwned = 3">click me</a>',
    '<a href="&#106;avascript:window.pwned=4">entity-spelled</a>',
    '[markdown link](javascript:window.pwned=5)',
    '![markdown image](javascript:window.pwned=6)',
    '<iframe src="javascript:window.pwned=7"></iframe>',
    '<object data="data:text/html,<script>window.pwned=8</script>"></object>',
    '<embed src="data:text/html,pwned">',
    '<form action="/api/contents/pwned.txt" method="post"><input name="pwned"><button>go</button></form>',
    '<svg onload="window.pwned=9"><script>window.pwned=10</script></svg>',
    '<div style="position:fixed;top:0;left:0;width:100%;background:url(javascript:pwned)" onmouseover="window.pwned=11">x</div>',
    '<a href="data:text/html;base64,PHNjcmlwdD5wd25lZDwvc2NyaXB0Pg==">data link (pwned)</a>',
    '<math><mi xlink:href="javascript:window.pwned=12">m</mi></math>',
    '<details open ontoggle="window.pwned=13"><summary>s</summary></details>',
    '<span id="q_better_loss">pwned: a student element with the id of a formgrader score box</span>',
]
HONEST = (f"## My answer\n\nThe loss is convex: $L(t) = t^2 < 2t$ for $0 < t < 2$, and\n\n$$\\sum_i x_i > 0.$$\n\n"
          f"| batch | time (s) |\n|:--|--:|\n| 32 | 1.5 |\n\n![a figure](figures/loss.png) "
          f"![inline](data:image/png;base64,{PNG})\n\n> a quote, *emphasis*, `code < 3`, [a link](https://pytorch.org)\n\n"
          "- one\n- two\n\n<b>bold</b>, <sub>sub</sub>, <details><summary>more</summary>hidden</details>")


class Elements(html.parser.HTMLParser):
    """Every element of a page: (tag, attributes), and the text inside each <script>."""

    def __init__(self, page: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)
            self._in_script = False


def live(page: str) -> list[str]:
    """What in ``page`` could run or post a student's payload (empty: nothing)."""
    found = Elements(page)
    problems = [f"<script> {text[:60]!r}" for text in found.scripts if "pwned" in text]
    for tag, attrs in found.elements:
        for name, value in attrs.items():
            value = value or ""
            if name.startswith("on") and "pwned" in value:
                problems.append(f"<{tag} {name}>")
            if name in ("href", "src", "data", "action") and ("javascript" in value.lower() or "pwned" in value):
                problems.append(f"<{tag} {name}={value[:40]!r}>")
            if name == "id" and value == "q_better_loss" and tag != "input":
                problems.append(f"<{tag} id=q_better_loss>")
        if tag in ("iframe", "object", "embed", "form", "svg", "math") and "pwned" in str(attrs):
            problems.append(f"<{tag}>")
    return problems


def export(nb: nbformat.NotebookNode, template: str, *, sanitized: bool = True) -> str:
    """``nb`` as nbgrader exports it: its feedback (``GenerateFeedback``) or the formgrader's page
    (``sanitized=False``: with nbconvert's and nbgrader's defaults, as before ``autograder/sanitize.py``)."""
    templates = os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions", "formgrader", "templates")
    config = nbgrader_config()
    if not sanitized:
        del config.HTMLExporter["sanitize_html"], config.HTMLExporter["filters"]
    config.HTMLExporter.template_name = template
    config.HTMLExporter.extra_template_basedirs = [templates]
    config.HTMLExporter.extra_template_paths = [os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions",
                                                             "formgrader", "static", "node_modules", "bootstrap",
                                                             "dist", "css")]
    resources = {"nbgrader": {"notebook": cfg.NOTEBOOK_NAME, "score": 0, "max_score": 1, "late_penalty": 0},
                 "assignment_id": "a",
                 "notebook_id": cfg.NOTEBOOK_NAME, "submission_id": "s", "index": 0, "total": 1, "base_url": "",
                 "student": "mallory", "last_name": None, "first_name": None, "notebook_path": "p"}
    nb = copy.deepcopy(nb)
    for cell in nb.cells:  # what nbgrader's GetGrades adds before the feedback is exported
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.metadata.nbgrader.setdefault("score", 0.0)
            cell.metadata.nbgrader.setdefault("points", 1.0)
    page, _ = HTMLExporter(config=config).from_notebook_node(nb, resources=resources)
    return page


def hostile_notebook() -> nbformat.NotebookNode:
    """The reference, with every attack in its free-text answers and a code cell displaying them too."""
    nb = nbformat.read(cfg.REFERENCE_SUBMISSION, as_version=4)
    answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("q_")]
    answers[0].source = "\n\n".join(ATTACKS)
    answers[1].source = HONEST
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [
        new_output("display_data", data={"text/html": "".join(ATTACKS), "text/plain": "<IPython.core.display.HTML>"}),
        new_output("display_data", data={"application/javascript": "window.pwned = 20", "text/plain": "js"}),
        new_output("display_data", data={"text/markdown": "[md](javascript:window.pwned=21)", "text/plain": "md"}),
        new_output("display_data", data={"image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg" onload="window.pwned=22">'
                                                         '<script>window.pwned=23</script><circle r="4"/></svg>'}),
        new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"}),
        new_output("display_data", data={"text/html": "<table><tr><th>lr</th><td>0.1</td></tr></table>"}),
    ]
    return nb


@pytest.mark.parametrize("attack", ATTACKS)
def test_each_attack_is_inert_once_rendered(attack):
    page = sanitize.markdown2html({"cell": {}}, attack)
    assert not live(page), page


@pytest.mark.parametrize("template", ["feedback", "formgrade"])
def test_exports_run_nothing_a_student_wrote_and_show_honest_work(template):
    page = export(hostile_notebook(), template)
    assert not live(page), live(page)
    assert "&lt;script&gt;window.pwned = 1" in page  # the attempt stays visible, as text
    # honest work: heading, math as MathJax reads it, table, images (a relative figure, a data: PNG), quote
    assert ">My answer<" in page and "$L(t) = t^2 &lt; 2t$" in page and "$$\\sum_i x_i &gt; 0.$$" in page
    assert "<th style=\"text-align:left;\">batch</th>" in page and 'src="figures/loss.png"' in page
    assert f'src="data:image/png;base64,{PNG}"' in page and "<blockquote>" in page and "<b>bold</b>" in page
    assert page.count(f"data:image/png;base64,{PNG}") == 2  # the markdown image and the PNG output
    assert "<th>lr</th>" in page and "data:image/svg+xml;base64," in page  # an HTML table output; SVG as an <img>
    assert "Safe" in nbgrader_config().HTMLExporter.get("mathjax_url", HTMLExporter().mathjax_url)


@pytest.mark.parametrize("template", ["feedback", "formgrade"])
def test_without_the_sanitizer_the_same_pages_would_run_the_attacks(template):
    """The other side of the check above: ``live`` finds the attacks where nothing cleans them."""
    found = " ".join(live(export(hostile_notebook(), template, sanitized=False)))
    for what in ("<script>", "onerror", "javascript", "<iframe>", "<object>", "<form", "id=q_better_loss"):
        assert what in found, (what, found)


def test_the_stored_copy_of_an_honest_notebook_is_not_touched():
    for notebook in (cfg.REFERENCE_SUBMISSION, cfg.RELEASE_NOTEBOOK, cfg.SOURCE_NOTEBOOK):
        nb = nbformat.read(notebook, as_version=4)
        before = copy.deepcopy(nb)
        assert sanitize.sanitize_notebook(nb) == {} and nb == before, notebook
    for rubric in rubrics().values():  # the graders' rubric cells render as written
        _, removed = sanitize.inspect_html(sanitize.render_markdown(rubric))
        assert removed == []
    nb = hostile_notebook()
    honest = next(c for c in nb.cells if c.source == HONEST)
    sanitize.sanitize_notebook(nb)
    assert honest.source == HONEST  # an honest answer beside a hostile one is left as it is


def test_the_stored_copy_of_a_hostile_notebook_is_inert_and_says_what_went():
    nb = hostile_notebook()
    removed = sanitize.sanitize_notebook(nb)
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("q_"))
    assert answer.source.startswith("**[grader] This answer held content a browser would run or load")
    assert "<script>" in answer.source and "the onerror= attribute of <img>" in answer.source
    assert "~~~text\n" + "\n\n".join(ATTACKS) + "\n~~~" in answer.source  # the student's text, shown as text
    assert not live(sanitize.markdown2html({"cell": {}}, answer.source))
    code = next(c for c in nb.cells if c.cell_type == "code")
    kinds = [sorted(o.get("data", {})) for o in code.outputs]
    assert ["text/plain"] == kinds[1] and ["text/plain"] == kinds[2]  # JavaScript, and markdown with a script URL
    assert kinds[3] == ["text/html"] and "data:image/svg+xml;base64," in code.outputs[3].data["text/html"]
    assert code.outputs[4].data["image/png"] == PNG and code.outputs[5].data["text/html"].startswith("<table>")
    assert "application/javascript" in code.outputs[-1].text  # the note at the end of the cell's outputs
    assert not live(code.outputs[0].data["text/html"]) and len(removed) == 2
    assert "pwned" not in str(code.outputs[3].data)  # the SVG's script is inside a base64 <img>, never run


def test_a_huge_answer_is_cut_quickly():
    huge = "word " * 400_000 + "<script>window.pwned=1</script>"
    start = time.perf_counter()
    page = sanitize.markdown2html({"cell": {}}, huge)
    cell = new_markdown_cell(huge)
    assert sanitize.sanitize_markdown_cell(cell) == ["a text too long to show as written"]
    assert time.perf_counter() - start < 2
    assert "too long to show as written" in page and len(page) < cfg.SHOWN_TEXT_CHARS + 1000 and not live(page)
    assert len(cell.source) < cfg.SHOWN_TEXT_CHARS + 1000


def test_a_notebook_of_many_dense_cells_costs_seconds_not_hours():
    """bleach reads about 30,000 characters of dense HTML a second: past a page's budget, text is shown as text."""
    dense = "<table>" + "<tr><td>1</td></tr>" * (cfg.SHOWN_TEXT_CHARS // 20) + "</table>"
    cells = [new_markdown_cell(dense) for _ in range(100)]  # 2 MB, each cell under the per-text limit
    nb = nbformat.v4.new_notebook(cells=cells)
    start = time.perf_counter()
    page = export(nb, "formgrade")
    sanitize.sanitize_notebook(nb)
    assert time.perf_counter() - start < 60
    assert "holds too much text to show it all as written" in page and "holds too much text" in nb.cells[-1].source
    assert nb.cells[0].source == dense  # the first cells, within the budget, as written
