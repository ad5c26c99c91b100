"""The adversarial corpus: cheating and hostile submissions, graded in one run with honest ones.

Checks that no score is inflated, that the grader survives, that the honest reference in the
same run gets full marks, that each failure carries a reason, and (with the sandbox) that
submissions cannot reach the network or the grader's files.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

import course_config as cfg
from autograder.kernel import sandbox
from autograder.grading.grade import grade

CORPUS = cfg.ROOT / "tests" / "adversarial"
EXAMPLES = cfg.EXAMPLES_DIR
EXPECTED = json.loads((CORPUS / "expected.json").read_text())
SANDBOXED = cfg.SANDBOX != "off" and sandbox.available() is None
CELL_TIMEOUT = 15  # the loops cost this much each; a right cell takes about 2 s
pytestmark = [pytest.mark.kernel, pytest.mark.slow]

sys.path.insert(0, str(CORPUS))
sys.path.insert(0, str(cfg.ROOT / "tests"))
from make_adversarial import build, probe_filesystem  # noqa: E402


def graded_cases() -> list[str]:
    return [name for name, case in EXPECTED.items() if SANDBOXED or not case["dangerous"]]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("out")
    for name in graded_cases():
        shutil.copy(CORPUS / f"{name}.ipynb", folder)
    shutil.copy(EXAMPLES / "reference.ipynb", folder / "honest_reference.ipynb")
    shutil.copy(EXAMPLES / "partial_memory_only.ipynb", folder / "honest_partial.ipynb")
    secrets = {
        "source notebook": str(cfg.SOURCE_NOTEBOOK),
        "gradebook": str(out / ".course" / "template" / "gradebook.db"),
        "other submission": str(folder / "honest_reference.ipynb"),
        "grades": str(out / "grades.csv"),
        "root's home": "/root/.bashrc",
    }
    import nbformat

    nbformat.write(probe_filesystem(secrets), folder / "probe_filesystem.ipynb")
    rows = grade(folder, out, workers=2, cell_timeout=CELL_TIMEOUT)
    return {row.student_id: row for row in rows}, out, secrets


def test_committed_corpus_is_what_the_generator_makes():
    for relative, content in build().items():
        assert (cfg.ROOT / relative).read_bytes() == content, f"{relative} is stale: run tests/adversarial/make_adversarial.py"


def test_every_submission_gets_a_row_and_honest_ones_are_graded_right(run):
    rows, _, _ = run
    assert set(rows) == set(graded_cases()) | {"honest_reference", "honest_partial", "probe_filesystem"}
    assert rows["honest_reference"].score == rows["honest_reference"].max_score
    partial = json.loads((EXAMPLES / "expected.json").read_text())["partial_memory_only"]
    assert {c: rows["honest_partial"].cells[c] for c in partial} == partial


@pytest.mark.parametrize("name", graded_cases())
def test_no_score_is_inflated(run, name):
    rows, _, _ = run
    row = rows[name]
    assert row.status == "graded", f"{name}: {row.status}"
    for cell, expected in EXPECTED[name]["scores"].items():
        assert row.cells[cell] == expected, f"{name}: {cell} scored {row.cells[cell]}, expected {expected}; failed={row.failed}"


@pytest.mark.parametrize("name", [n for n in graded_cases() if EXPECTED[n]["notes"]])
def test_the_grader_explains_what_it_did(run, name):
    rows, _, _ = run
    for cell, text in EXPECTED[name]["notes"].items():
        notes = " | ".join(rows[name].notes.get(cell, []))
        assert text in notes, f"{name}: notes on {cell} are {notes!r}, expected to mention {text!r}"


@pytest.mark.parametrize("name", ["infinite_loop", "ignores_interrupts"])
def test_a_cell_past_its_time_limit_is_graded_a_second_time_and_the_feedback_says_so(run, name):
    rows, _, _ = run
    notes = " | ".join(rows[name].notes.get("ex1_memory", []))
    assert "graded a second time" in notes and "ran past the limit again" in notes, notes
    assert "graded a second time" in rows[name].feedback.read_text()


def test_honest_submissions_carry_no_grader_note(run):
    rows, _, _ = run
    for name in ["honest_reference", "honest_partial", "probe_filesystem"]:
        assert rows[name].notes == {}, (name, rows[name].notes)
        assert "[grader]" not in rows[name].feedback.read_text(), name


def test_printed_notes_are_never_read_as_the_graders(run):
    rows, _, _ = run
    row = rows["prints_fake_grader_notes"]
    assert row.notes == {} and row.score == row.max_score
    assert "graded a second time" not in row.feedback.read_text().split("<body", 1)[1][:5000]


def test_no_hidden_test_reaches_any_feedback(run):
    from test_grade import hidden_identifiers

    rows, out, _ = run
    names = hidden_identifiers()
    for student, row in rows.items():
        html = row.feedback.read_text()
        own = (out / "submitted" / student / cfg.ASSIGNMENT_ID / f"{cfg.NOTEBOOK_NAME}.ipynb").read_text()
        leaked = sorted(name for name in names - set(re.findall(r"\b_\w+", own))  # a name of its own may show
                        if re.search(rf"(?<![\w]){name}(?![\w])", html))
        assert not leaked and "BEGIN HIDDEN TESTS" not in html, f"{student}'s feedback shows hidden test code: {leaked[:5]}"


@pytest.mark.skipif(not SANDBOXED, reason=f"kernels are not sandboxed here: {sandbox.available()}")
def test_a_huge_line_is_capped_before_nbgrader_reads_it(run):
    rows, out, _ = run
    row = rows["huge_single_line"]
    assert any("was dropped" in note for notes in row.notes.values() for note in notes), row.notes
    assert (out / ".course" / "autograded" / "huge_single_line.ipynb").stat().st_size < 2 * cfg.OUTPUT_NOTEBOOK_MAX_BYTES


def test_failures_have_a_reason_in_the_feedback(run):
    rows, out, _ = run
    for name in graded_cases():
        row = rows[name]
        for cell, expected in EXPECTED[name]["scores"].items():
            if expected == 0:
                assert cell in row.failed or row.notes, f"{name}: {cell} lost its points without a reason"
        assert row.feedback and row.feedback.is_file(), f"{name}: no feedback"


def probe_lines(out: Path, student: str) -> list[str]:
    import nbformat

    nb = nbformat.read(out / ".course" / "autograded" / f"{student}.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    return [line for line in text.splitlines() if line.startswith("PROBE")]


@pytest.mark.skipif(not SANDBOXED, reason=f"kernels are not sandboxed here: {sandbox.available()}")
def test_sandbox_blocks_files_and_network(run):
    rows, out, secrets = run
    lines = probe_lines(out, "probe_filesystem")
    for label in secrets:
        assert f"PROBE read {label}: blocked" in "\n".join(lines), lines
        assert f"PROBE write {label}: blocked" in "\n".join(lines), lines
    uid_line = next(line for line in lines if line.startswith("PROBE uid:"))
    assert int(uid_line.split(":")[1]) >= cfg.SANDBOX_UID_BASE
    cwd_line = next(line for line in lines if line.startswith("PROBE cwd:"))
    assert ".ipynb" not in cwd_line, "the kernel can see a notebook (with hidden tests) in its folder"
    network = [line for line in probe_lines(out, "network_probe") if "network" in line]
    assert network and all("blocked" in line for line in network), network
    assert rows["probe_filesystem"].score == rows["probe_filesystem"].max_score
    assert not (Path(secrets["grades"]).parent / "planted.txt").exists()
