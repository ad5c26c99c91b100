"""A hostile submission graded beside the reference, then every page built from it opened in Chromium.

One class is graded once (``grade``'s command line, as a TA runs it): the reference, and mallory's
notebook, whose free-text answers hold a script, an ``onerror`` handler, a ``javascript:`` link,
an ``<iframe>``, an ``<object>``, a form, a lone surrogate, a NUL, right-to-left controls and a very
long line, and whose answer cell displays HTML and JavaScript with the same tricks. Then:

- the class is graded, report.md and similarity.html are written, mallory named in their notes;
- her feedback, her page in the formgrader (logged in with the grader's token), the manual sheet and
  similarity.html run none of her script: the page title is the page's own, ``window.pwned`` is
  unset, no alert, no file written through the contents API, and honest text, math, tables and
  images are still there. The same check run on her raw HTML does see the script run;
- the formgrader's token files cannot be read by another user, the token is not on its command
  line, and a form request without the XSRF token is refused;
- the LMS file of a roster whose display names are formulas holds them as text.
"""
from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

import course_config as cfg
from autograder.marking import export, formgrader, manual
from autograder.grading.gradebook import course_path
from autograder.lms import lms_format
from tests.browser import browser_or_skip, chrome

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAFgwJ/lRu1HQAAAABJRU5ErkJggg==")
# the script also tries to write a file into the course folder with the grader's login
PUT_FILE = ('fetch("/api/contents/pwned.txt", {method: "PUT", headers: {"Content-Type": "application/json", '
            '"X-XSRFToken": (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || ""}, '
            'body: JSON.stringify({type: "file", format: "text", content: "pwned"})})')


def hit(name: str, where: str = "window") -> str:
    """JavaScript that records that the payload ``name`` ran: in ``window.pwned`` and the page title. A
    page is safe when, once loaded (and its links clicked), neither changed."""
    return f"({where}.pwned = ({where}.pwned || []).concat(['{name}']), {where}.document.title = 'pwned')"


ATTACK = (f'<script>{hit("script")}; {PUT_FILE}</script>\n'
          f'<img src="nowhere.png" onerror="{hit("onerror")}">\n'
          f'<a class="pwn-link" href="javascript:void({hit("link")})">a link</a>\n'
          f'<iframe src="javascript:void({hit("iframe", "parent")})"></iframe>\n'
          f'<object data="javascript:void({hit("object", "parent")})"></object>\n'
          '<form action="/api/contents/pwned-form.txt" method="post"><input name="x"><button>send</button></form>\n')
AWKWARD = "Lone \ud800 surrogate and NUL \x00 byte; right-to-left \u202egnirts\u202c text; " + "long" * 5_000
HONEST = (f"The noise falls as $\\sigma^2 / B$ for a batch of $B < N$ samples.\n\n| batch | time |\n|---|---|\n"
          f"| 32 | 1.5 s |\n\n![one pixel](data:image/png;base64,{PNG})\n")
DISPLAY = ("\nfrom IPython.display import HTML, Image, Javascript, display\n"
           f"display(HTML({ATTACK!r}))\n"
           f"display(Javascript({hit('javascript output')!r}))\n"
           f"display(Image(data=__import__('base64').b64decode({PNG!r})))\n")


def hostile_notebook(path: Path) -> Path:
    """The reference with the attacks in its answers, written as ASCII JSON (``\\ud800`` spelled as JSON does)."""
    nb = json.loads(cfg.REFERENCE_SUBMISSION.read_text())
    for cell in nb["cells"]:
        gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
        source = "".join(cell["source"])
        if gid == "q_better_loss":
            cell["source"] = source + "\n\n" + ATTACK
        elif gid == "q_good_descent":
            cell["source"] = source + "\n\n" + AWKWARD
        elif gid == "q_sgd_vs_minibatch_plot":
            cell["source"] = source + "\n\n" + HONEST
        elif gid == "mcq_minibatch":
            cell["source"] = source + DISPLAY
    path.write_text(json.dumps(nb, ensure_ascii=True))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def graded():
    """The class, graded by ``grade``'s command line in a folder every user may traverse (so that the
    permission test below shows the files' own modes at work); then the manual sheets."""
    base = Path(tempfile.mkdtemp(prefix="w4-hostile-"))
    os.chmod(base, 0o711)
    submissions = base / "submissions"
    submissions.mkdir()
    shutil.copy(cfg.REFERENCE_SUBMISSION, submissions / "reference.ipynb")
    hostile_notebook(submissions / "mallory.ipynb")
    out = base / "out"
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(submissions), "--out", str(out)],
                          cwd=cfg.ROOT, capture_output=True, text=True, timeout=600)
    manual.write_manual_sheet(out, base / "sheets")
    yield out, done
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def server(graded):
    """The formgrader on the graded class, as ``python -m autograder formgrader`` starts it."""
    out, _ = graded
    token, port = secrets.token_hex(16), free_port()
    home = out / ".course" / "jupyter"
    process = formgrader.start(out, port, token, home, home / "server.log")
    try:
        formgrader.wait_ready(process, f"http://127.0.0.1:{port}", token)
        yield process, f"http://127.0.0.1:{port}", token, home
    finally:
        process.terminate()
        process.wait(20)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    browser_or_skip()
    driver = chrome(tmp_path_factory.mktemp("chrome"))
    yield driver
    driver.quit()


def test_the_class_is_graded_beside_a_surrogate_and_a_nul_byte(graded):
    out, done = graded
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert rows["mallory"]["status"] == rows["reference"]["status"] == "graded"
    assert rows["mallory"]["autograded_score"] == rows["reference"]["autograded_score"] == "21"
    assert "mallory.ipynb (student mallory): 2 character(s) that no file can hold" in done.stderr
    assert "mallory: characters of the notebook that no file can hold" in (out / "report.md").read_text()
    page = (out / "similarity.html").read_text(encoding="utf-8")
    assert "mallory: \ufffd in its answers" in page and "reference" in page
    sheet = (out.parent / "sheets" / "q_good_descent.html").read_text(encoding="utf-8")
    assert "Lone \ufffd surrogate and NUL \ufffd byte" in sheet and "more characters not shown" in sheet


def test_the_graders_copy_is_stored_inert_and_the_reference_as_graded(graded):
    out, _ = graded
    copy = nbformat.read(course_path(out, "autograded", "mallory") / f"{cfg.NOTEBOOK_NAME}.ipynb", as_version=4)
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in copy.cells}
    assert cells["q_better_loss"].source.startswith("**[grader] This answer held content a browser would run")
    assert cells["q_sgd_vs_minibatch_plot"].source.endswith(HONEST)  # her honest answer, as she wrote it
    kinds = [sorted(o.get("data", {})) for o in cells["mcq_minibatch"].outputs]
    assert ["text/plain"] in kinds and not any("application/javascript" in k for k in kinds)
    reference = (course_path(out, "autograded", "reference") / f"{cfg.NOTEBOOK_NAME}.ipynb").read_text()
    assert "[grader] This answer held" not in reference and "[grader] This cell's output" not in reference


def page_state(driver) -> dict:
    """What a student's script would have changed, and what honest work shows, in the loaded page."""
    from selenium.common.exceptions import NoAlertPresentException, WebDriverException
    from selenium.webdriver.common.by import By

    time.sleep(0.3)  # an onerror handler runs once the image has failed to load
    for link in driver.find_elements(By.LINK_TEXT, "a link"):  # her javascript: link, clicked as a grader would
        try:
            link.click()
        except WebDriverException:  # not clickable (hidden, covered): not followed either
            pass
    time.sleep(0.2)
    try:
        driver.switch_to.alert.dismiss()
        alert = True
    except NoAlertPresentException:
        alert = False
    return {"alert": alert, **driver.execute_script(
        "return {title: document.title, pwned: window.pwned === undefined ? null : window.pwned,"
        " text: document.body.innerText,"
        " pixels: Array.from(document.images).filter(i => i.src.startsWith('data:image/png') && i.naturalWidth > 0)"
        ".length, tables: document.querySelectorAll('table').length}")}


def assert_inert(state: dict, title: str) -> None:
    assert state["pwned"] is None and not state["alert"], state["pwned"]
    assert state["title"] == title != "pwned"


def test_the_check_sees_the_attack_run_where_nothing_cleans_it(browser, tmp_path):
    raw = tmp_path / "raw.html"
    raw.write_text(f"<!DOCTYPE html><html><head><title>raw</title></head><body>{ATTACK}</body></html>")
    browser.get(raw.as_uri())
    state = page_state(browser)
    assert {"script", "onerror", "link"} <= set(state["pwned"]) and state["title"] == "pwned"


def test_her_feedback_runs_none_of_her_script(graded, browser):
    out, _ = graded
    browser.get((out / "feedback" / "mallory.html").as_uri())
    state = page_state(browser)
    assert_inert(state, cfg.NOTEBOOK_NAME)
    assert "<script>(window.pwned" in state["text"]  # her attempt, shown as text
    assert "$\\sigma^2 / B$" in state["text"] and "1.5 s" in state["text"]  # math for MathJax, the table
    assert state["pixels"] >= 2  # the PNG her cell displayed and the one in her answer, decoded


def test_her_page_in_the_logged_in_formgrader_runs_none_of_her_script(graded, server, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    out, _ = graded
    _, base, token, _ = server
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}", cfg.COURSE_ID) as gb:
        ids = {s: gb.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, s).id for s in ("reference", "mallory")}
    titles = {}
    for student in ("reference", "mallory"):  # logged in by the token: the cookie is the grader's
        browser.get(f"{base}/formgrader/submissions/{ids[student]}/?token={token}")
        WebDriverWait(browser, 30, poll_frequency=0.05).until(lambda d: d.execute_script(
            "return !!(window.formgrader && formgrader.grades && formgrader.grades.loaded)"))
        state = page_state(browser)
        titles[student] = state["title"]
        assert state["pwned"] is None and not state["alert"] and state["title"] != "pwned", (student, state["pwned"])
    assert titles["mallory"] == titles["reference"].replace("reference", "mallory")
    assert "For graders only" in state["text"] and "$\\sigma^2 / B$" in state["text"] and state["pixels"] >= 2
    time.sleep(0.5)
    assert not list(out.glob("pwned*")), "a script wrote into the course folder"
    request = urllib.request.Request(f"{base}/api/contents/pwned.txt", headers={"Authorization": f"token {token}"})
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(request, timeout=10)


def test_the_manual_sheet_and_the_similarity_page_run_none_of_her_script(graded, browser):
    out, _ = graded
    for page, title in [(out.parent / "sheets" / "q_better_loss.html", "q_better_loss"),
                        (out / "similarity.html", f"Similarity of submissions: {cfg.ASSIGNMENT_ID}")]:
        browser.get(page.as_uri())
        state = page_state(browser)
        assert_inert(state, title)
    browser.get((out.parent / "sheets" / "q_better_loss.html").as_uri())
    assert "<script>(window.pwned" in page_state(browser)["text"]


def test_another_user_cannot_read_the_formgraders_token(graded, server):
    out, _ = graded
    process, _, token, home = server
    if os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip("reading as another user needs root (runuser)")

    def as_nobody(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "nobody", "--", *command], capture_output=True, text=True, timeout=30)

    assert as_nobody("cat", str(out / "nbgrader_config.py")).returncode == 0  # the folder is open: the modes below decide
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name.startswith("jpserver-") and p.name.endswith("-open.html") for p in files), files
    assert any(p.name == "server.log" for p in files)
    for path in [home, *files, *[p for p in home.rglob("*") if p.is_dir()]]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
        read = as_nobody("ls", str(path)) if path.is_dir() else as_nobody("cat", str(path))
        assert read.returncode != 0 and token not in read.stdout, path
    assert token not in Path(f"/proc/{process.pid}/cmdline").read_text()  # every user can read the command line
    environ = as_nobody("cat", f"/proc/{process.pid}/environ")
    assert environ.returncode != 0 and token not in environ.stdout


def test_a_form_request_without_the_xsrf_token_is_refused(graded, server):
    out, _ = graded
    _, base, token, _ = server
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/formgrader?token={token}", timeout=10).read()  # logged in: the cookies a browser keeps
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    body = json.dumps({"type": "file", "format": "text", "content": "x"}).encode()
    refused = urllib.request.Request(f"{base}/api/contents/xsrf.txt", data=body, method="PUT")
    with pytest.raises(urllib.error.HTTPError, match="403"):
        opener.open(refused, timeout=10)
    accepted = urllib.request.Request(f"{base}/api/contents/xsrf.txt", data=body, method="PUT",
                                      headers={"X-XSRFToken": xsrf})
    assert opener.open(accepted, timeout=10).status == 201  # the cookie logs in; only the XSRF token was missing
    (out / "xsrf.txt").unlink()


def test_the_lms_file_holds_roster_formulas_as_text(graded, tmp_path):
    out, _ = graded
    layout = lms_format(cfg.LMS)
    names = {"reference": '=HYPERLINK("http://x","y")', "mallory": "@SUM(1+1)"}
    roster = tmp_path / "roster.csv"
    with open(roster, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*layout.identity, f"{cfg.LMS_ASSIGNMENT_COLUMN} (4242)"])
        for student, name in names.items():
            writer.writerow([name if c == layout.name else student if c == "SIS Login ID" else "+1+1" if c == "ID"
                             else "-2+3" for c in layout.identity] + [""])
    done = subprocess.run([sys.executable, "-m", "autograder", "export", str(out), "--out", str(tmp_path / "lms.csv"),
                           "--roster", str(roster)], cwd=cfg.ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "lms.csv", newline="", encoding="utf-8") as f:
        rows = {row["SIS Login ID"]: row for row in csv.DictReader(f) if row["SIS Login ID"]}
    for student, name in names.items():
        assert rows[student][layout.name] == "'" + name and rows[student]["ID"] == "'+1+1"
        assert rows[student]["Section"] == "'-2+3"
    assert export.read_roster(roster).rows[0][layout.name] == names["reference"]  # read as written
