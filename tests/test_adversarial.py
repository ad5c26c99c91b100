"""The adversarial corpus: cheating and hostile submissions, graded with honest ones.

Two runs: the attacks on the verdict (``make test``), and the attacks on the machine's resources
(``make test-attacks``, also in ``make test-all`` and CI), each beside the honest submissions.

Checks that no score is inflated, that the grader survives, that the honest reference in the
same run gets full marks, that each failure carries a reason, and (with the sandbox) that
submissions cannot reach the network or the grader's files.
"""
from __future__ import annotations

import html
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


# Attacks on the machine's resources (CPU, processes, memory, output, a signal-proof loop) are graded
# in a run of their own: they cost minutes of the suite, so `make test` leaves them to `make test-all`
# and `.ci/run`'s `make test-attacks`; every attack on the verdict is graded in `make test`.
MACHINE = {"busy_children", "fork_bomb", "memory_bomb", "huge_output", "huge_single_line", "ignores_interrupts"}


def graded_cases(group: str | None = None) -> list[str]:
    """The cases this machine grades (the dangerous ones only in a sandbox); ``group``: "verdict" or "machine"."""
    return [name for name, case in EXPECTED.items() if (SANDBOXED or not case["dangerous"])
            and (group is None or (name in MACHINE) == (group == "machine"))]


def cases(*, having_notes: bool = False) -> list:
    """Every graded case as a parameter, those of the machine group marked extended."""
    return [pytest.param(name, marks=[pytest.mark.extended] if name in MACHINE else [])
            for name in graded_cases() if not having_notes or EXPECTED[name]["notes"]]


def rows_of(request, name: str):
    """The run that graded ``name``: its rows, output folder and planted secrets."""
    return request.getfixturevalue("machine_run" if name in MACHINE else "run")


def grade_corpus(names: list[str], tmp_path_factory) -> tuple[dict, Path, dict]:
    folder = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("out")
    for name in names:
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
    # the honest reference in the same run is checked below, so the canary (graded first) is left out
    rows = grade(folder, out, workers=2, cell_timeout=CELL_TIMEOUT, canary=False)
    return {row.student_id: row for row in rows}, out, secrets


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The attacks on the verdict, graded in one run with the honest submissions."""
    return grade_corpus(graded_cases("verdict"), tmp_path_factory)


@pytest.fixture(scope="module")
def machine_run(tmp_path_factory):
    """The attacks on the machine's resources, graded in one run with the honest submissions."""
    return grade_corpus(graded_cases("machine"), tmp_path_factory)


def test_committed_corpus_is_what_the_generator_makes():
    for relative, content in build().items():
        assert (cfg.ROOT / relative).read_bytes() == content, f"{relative} is stale: run tests/adversarial/make_adversarial.py"


@pytest.mark.parametrize("group", ["verdict", pytest.param("machine", marks=pytest.mark.extended)])
def test_every_submission_gets_a_row_and_honest_ones_are_graded_right(request, group):
    rows, _, _ = request.getfixturevalue("machine_run" if group == "machine" else "run")
    assert set(rows) == set(graded_cases(group)) | {"honest_reference", "honest_partial", "probe_filesystem"}
    assert rows["honest_reference"].score == rows["honest_reference"].max_score
    partial = json.loads((EXAMPLES / "expected.json").read_text())["partial_memory_only"]
    assert {c: rows["honest_partial"].cells[c] for c in partial} == partial


@pytest.mark.parametrize("name", cases())
def test_no_score_is_inflated(request, name):
    rows, _, _ = rows_of(request, name)
    row = rows[name]
    assert row.status == "graded", f"{name}: {row.status}"
    for cell, expected in EXPECTED[name]["scores"].items():
        if cell in EXPECTED[name]["may_lose"]:  # its own cell, slowed by the attack itself: never more than honest
            assert 0 <= row.cells[cell] <= expected, f"{name}: {cell} scored {row.cells[cell]}, at most {expected}"
            continue
        assert row.cells[cell] == expected, f"{name}: {cell} scored {row.cells[cell]}, expected {expected}; failed={row.failed}"


@pytest.mark.parametrize("name", cases(having_notes=True))
def test_the_grader_explains_what_it_did(request, name):
    """In its record, and on the student's feedback page."""
    rows, _, _ = rows_of(request, name)
    page = html.unescape(rows[name].feedback.read_text())
    for cell, text in EXPECTED[name]["notes"].items():
        notes = " | ".join(rows[name].notes.get(cell, []))
        assert text in notes, f"{name}: notes on {cell} are {notes!r}, expected to mention {text!r}"
        assert text in page, f"{name}: the feedback does not show the note on {cell} ({text!r})"


@pytest.mark.parametrize("name", ["infinite_loop", pytest.param("ignores_interrupts", marks=pytest.mark.extended)])
def test_a_cell_past_its_time_limit_is_graded_a_second_time_and_the_feedback_says_so(request, name):
    rows, _, _ = rows_of(request, name)
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


@pytest.mark.parametrize("group", ["verdict", pytest.param("machine", marks=pytest.mark.extended)])
def test_no_hidden_test_reaches_any_feedback(request, group):
    from test_grade import hidden_identifiers

    rows, out, _ = request.getfixturevalue("machine_run" if group == "machine" else "run")
    names = hidden_identifiers()
    for student, row in rows.items():
        html = row.feedback.read_text()
        own = (out / "submitted" / student / cfg.ASSIGNMENT_ID / f"{cfg.NOTEBOOK_NAME}.ipynb").read_text()
        leaked = sorted(name for name in names - set(re.findall(r"\b_\w+", own))  # a name of its own may show
                        if re.search(rf"(?<![\w]){name}(?![\w])", html))
        assert not leaked and "BEGIN HIDDEN TESTS" not in html, f"{student}'s feedback shows hidden test code: {leaked[:5]}"


@pytest.mark.extended
@pytest.mark.skipif(not SANDBOXED, reason=f"kernels are not sandboxed here: {sandbox.available()}")
def test_a_huge_line_is_capped_before_nbgrader_reads_it(machine_run):
    rows, out, _ = machine_run
    row = rows["huge_single_line"]
    assert any("was dropped" in note for notes in row.notes.values() for note in notes), row.notes
    assert (out / ".course" / "autograded" / "huge_single_line.ipynb").stat().st_size < 2 * cfg.OUTPUT_NOTEBOOK_MAX_BYTES


@pytest.mark.parametrize("name", cases())
def test_failures_have_a_reason_in_the_feedback(request, name):
    rows, _, _ = rows_of(request, name)
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
