"""Every command the README shows is run, as written, from a fresh copy of the repository.

The README's code blocks are parsed; each ``python -m autograder ...`` line is run in order
from a copy of the repository under ``tmp_path`` (where instructors clone: a folder the old
sandbox refused), with its placeholders (SUBMISSIONS, DIR, ...) replaced by example
arguments. Each must exit as expected and print its key lines. ``make demo`` and ``make test``
are not run here (``.ci/run`` runs both on a clean clone); a README command that this test
does not know fails it, so the README and the tests cannot drift apart.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import course_config as cfg

README = cfg.ROOT / "README.md"
pytestmark = [pytest.mark.kernel, pytest.mark.slow]


@dataclass(frozen=True)
class Expect:
    returncode: int
    lines: tuple[str, ...]  # regular expressions, each must match a line of stdout


EXPECTED = {
    "doctor": Expect(0, (r"^sandbox\s+(ON|OFF)", r"^cell time limit\s+\d+ s", r"^canary\s+PASS: the reference earned 21/21")),
    "release": Expect(0, (r"^release check: no leak, no drift$",)),
    "selftest": Expect(0, (r"^no surprise: every mutant loses exactly where expected, every alternative earns full marks$",
                           r"all seeds pass")),
    "check": Expect(0, (r"^PASS\s+test_ex1_memory\s+visible tests pass", r"^7/7 test cells pass their visible tests")),
    "grade": Expect(0, (r"^reference\s.*\s21/21\s+graded$", r"^blank\s.*\s0/21\s+graded$",
                        r"^partial_memory_only\s.*\s8/21\s+graded$")),
    "merge": Expect(0, (r"^merged 1 shard\(s\) into ",)),
    "gradescope-zip": Expect(0, (r"^Gradescope autograder: .*gradescope\.zip$",)),
    "formgrader": Expect(0, (r"^formgrader: http://127\.0\.0\.1:\d+/formgrader\?token=\w+",)),
    "manual-sheet": Expect(0, (r"^7 question pages in .*then: \.venv/bin/python -m autograder manual-import ",)),
    "manual-import": Expect(0, (r"^imported 0 manual grade\(s\) into ",)),  # the sheet as written: nothing filled in
    # nothing graded by hand, no submission time in a folder: no one is final, each named with why
    "feedback": Expect(0, (r"^final feedback: 0 page\(s\) in ", r"^  no page for reference: manual grading unfinished")),
    "export": Expect(0, (r"^reference\s+21\s", r"^0 final, 5 flagged", r"^LMS import file \(canvas\): ")),
}
SERVERS = {"formgrader"}  # run until they print their address, then stopped with Ctrl-C (SIGINT)


def readme_commands() -> list[str]:
    """The ``python -m autograder`` lines of the README's code blocks, comments removed, in order."""
    # fences open and close at the start of a line (indented in a list), each block in its language
    fences = re.findall(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```[ \t]*$", README.read_text(), re.S | re.M)
    blocks = [block for language, block in fences if language in ("", "bash", "sh")]
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if re.match(r"^(\.venv/bin/)?python -m autograder ", line)]


def subcommand(line: str) -> str:
    return shlex.split(line)[3]


def with_examples(line: str, folders: dict[str, Path]) -> list[str]:
    """The README line with its placeholders replaced by example arguments."""
    line = re.sub(r"\s*\[[^\]]*\]", "", line)  # optional arguments
    line = line.replace("DIR_0 ... DIR_N-1", str(folders["graded"]))
    line = line.replace("--out DIR", f"--out {folders['merged'] if subcommand(line) == 'merge' else folders['graded']}")
    line = line.replace("SUBMISSIONS", str(folders["submissions"]))
    line = line.replace("SHEETS", str(folders["sheets"])).replace("FINAL.csv", str(folders["final"]))
    line = re.sub(r"(?<=\s)DIR\b", str(folders["graded"]), line)
    if subcommand(line) in SERVERS:
        line += f" --port {free_port()}"
    line = line.replace("path/to/W4_Tutorial1.ipynb", str(cfg.REFERENCE_SUBMISSION.relative_to(cfg.ROOT)))
    argv = shlex.split(line)
    return [".venv/bin/python", *argv[1:]]  # the README's python is the checkout's venv


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# selftest grades the 30-odd mutants and runs 20 calibration seeds (about 4 minutes on 2 cores):
# `make test-all` runs it; the default suite keeps every grading path without it
EXTENDED = {"selftest"}


@pytest.fixture(scope="module")
def clone(tmp_path_factory, repository_copy) -> tuple[Path, dict[str, Path]]:
    base = tmp_path_factory.mktemp("readme")
    checkout = repository_copy(base / "my clone")
    (checkout / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    folders = {"submissions": base / "submissions", "graded": base / "graded", "merged": base / "merged",
               "sheets": base / "sheets", "final": base / "final" / "canvas.csv"}
    shutil.copytree(cfg.EXAMPLES_DIR, folders["submissions"], ignore=shutil.ignore_patterns("*.json"))
    return checkout, folders


def run_line(line: str, clone: tuple[Path, dict[str, Path]]) -> tuple[str, subprocess.CompletedProcess]:
    checkout, folders = clone
    argv = with_examples(line, folders)
    if subcommand(line) in SERVERS:
        return " ".join(argv), run_server(argv, checkout)
    return " ".join(argv), subprocess.run(argv, cwd=checkout, capture_output=True, text=True, timeout=1500)


def run_server(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Start a serving command, wait for its first line of output (its address), then Ctrl-C it."""
    import signal
    import time

    # Ctrl-C as at a terminal: a shell script's background job (CI's runner, `make ... &`) starts
    # its children with SIGINT ignored, and an ignored SIGINT is inherited
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + timeout
    first = ""
    while not first and process.poll() is None and time.monotonic() < deadline:
        first = process.stdout.readline()
    process.send_signal(signal.SIGINT)
    rest, errors = process.communicate(timeout=60)
    return subprocess.CompletedProcess(argv, process.returncode, first + rest, errors)


@pytest.fixture(scope="module")
def runs(clone) -> dict[str, tuple[str, subprocess.CompletedProcess]]:
    """The README's default commands, in the README's order (merge reads what grade wrote)."""
    return {subcommand(line): run_line(line, clone) for line in readme_commands() if subcommand(line) not in EXTENDED}


def check_run(command: str, argv: str, run: subprocess.CompletedProcess) -> None:
    expect = EXPECTED[command]
    assert run.returncode == expect.returncode, f"{argv} exited {run.returncode}:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    lines = run.stdout.splitlines()
    for pattern in expect.lines:
        assert any(re.search(pattern, line) for line in lines), f"{argv}: no line matches {pattern!r}:\n{run.stdout[-3000:]}"


def test_the_readme_shows_each_command_of_the_cli():
    from autograder.__main__ import parser

    shown = {subcommand(line) for line in readme_commands()}
    assert set(EXPECTED) <= shown, f"commands with a check here but not in the README: {set(EXPECTED) - shown}"
    assert shown <= set(EXPECTED), f"README commands this test does not check: {shown - set(EXPECTED)}"
    assert shown <= set(parser()._subparsers._group_actions[0].choices)


@pytest.mark.platform
@pytest.mark.parametrize("command", sorted(set(EXPECTED) - EXTENDED))
def test_readme_command_runs_from_a_fresh_copy(runs, command):
    check_run(command, *runs[command])


@pytest.mark.extended
@pytest.mark.parametrize("command", sorted(EXTENDED))
def test_readme_extended_command_runs_from_a_fresh_copy(clone, command):
    (line,) = [line for line in readme_commands() if subcommand(line) == command]
    check_run(command, *run_line(line, clone))
