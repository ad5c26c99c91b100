"""The kernel sandbox wherever the files lie, and what happens when it cannot start.

The sandbox is an allow-list: the kernel's file system holds the Python environment, a few
system files and the notebook's data, and nothing else. These tests grade real submissions
from copies of the repository placed where instructors put them (under ``/tmp``, ``/home``,
``/srv``, ``/root``, nested in each other, with spaces in the names; the venv inside the
checkout, outside it, or under a home folder borrowing another's packages), with a probe that searches the whole file system for notebooks,
gradebooks and grade files while a second copy of the repository lies elsewhere. Then they
break the sandbox on purpose and check that no student gets a score from the grader's fault.
"""
from __future__ import annotations

import csv
import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

import course_config as cfg
from autograder.kernel import sandbox
from autograder.marking import export
from autograder.grading.grade import Canary
from autograder.grading.results import GradeRow

CORPUS = cfg.ROOT / "tests" / "adversarial"
SANDBOXED = cfg.SANDBOX != "off" and sandbox.available() is None
needs_sandbox = pytest.mark.skipif(not SANDBOXED, reason=f"kernels are not sandboxed here: {sandbox.available()}")

sys.path.insert(0, str(CORPUS))
from make_adversarial import probe_search  # noqa: E402


# --- without a kernel -------------------------------------------------------------------------

def bind_sources(argv: list[str]) -> list[str]:
    sources = []
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg in ("--ro-bind", "--ro-bind-try", "--bind", "--dev-bind"):
            sources.append(argv[index + 1])
    return sources


def test_the_kernel_sees_only_what_the_allow_list_names(tmp_path):
    files = {f"{sandbox.HOME}/data": str(tmp_path / "data"), "/etc/passwd": str(tmp_path / "passwd")}
    config = sandbox.SandboxConfig(uid=61000, gid=61000, readonly=sandbox.python_environment(),
                                   masked=sandbox.hidden_packages(), files=files, ipc=str(tmp_path / "ipc"),
                                   memory_bytes=2**30, max_processes=64, scratch_bytes=2**28)
    argv = sandbox.bwrap_argv(config, ["python", "-m", "ipykernel_launcher"])
    allowed = {"/usr", *sandbox.ETC_FILES, *config.readonly, *files.values(), config.ipc, *sandbox.gpu_devices()}
    allowed |= {top for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32") if os.path.isdir(top)}
    assert set(bind_sources(argv)) <= allowed, set(bind_sources(argv)) - allowed
    for secret in (cfg.ROOT, cfg.SOURCE_NOTEBOOK, tmp_path):  # nothing binds them or a folder above them
        assert not any(Path(secret).is_relative_to(source) for source in bind_sources(argv) if source != "/usr"), secret
    assert {"--unshare-pid", "--unshare-net", "--unshare-ipc", "--die-with-parent", "--new-session"} <= set(argv)
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "--inh-caps=-all" in argv and "--bounding-set=-all" in argv and "--no-new-privs" in argv
    # nbgrader's own test notebooks and gradebooks are masked inside the venv
    assert all(argv[argv.index(folder) - 1] == "--tmpfs" for folder in config.masked)


def test_time_limits_scale_with_the_canarys_cell_times():
    row = GradeRow("canary", 21.0, 21.0, {}, "graded", seconds=9.0)
    canary = Canary(row, {"setup_imports": 1.5, "test_ex2_bn_models_convergence": 4.0, "slow_cell": 30.0})
    limits = canary.cell_timeouts()
    assert limits["setup_imports"] == cfg.CELL_TIMEOUT_S  # never below the configured limit
    assert limits["slow_cell"] == cfg.TIMEOUT_SCALE * 30.0  # a slow machine gets more time
    assert canary.slowest() == ("slow_cell", 30.0)


# --- real grading runs from copies of the repository ------------------------------------------

def read_grades(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "grades.csv", newline="") as f:
        return {row["student_id"]: row for row in csv.DictReader(f)}


def probe_lines(out: Path, student: str) -> list[str]:
    nb = nbformat.read(out / ".course" / "autograded" / f"{student}.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    return [line for line in text.splitlines() if line.startswith("PROBE")]


def grade_from(checkout: Path, python: str, submissions: Path, out: Path,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m autograder grade`` as an instructor runs it, from ``checkout``."""
    return subprocess.run([python, "-m", "autograder", "grade", str(submissions), "--out", str(out)],
                          cwd=checkout, capture_output=True, text=True, timeout=900, env=env)


def one_submission(tmp_path: Path, student: str) -> tuple[Path, Path]:
    """(a folder holding the partial example as ``<student>.ipynb``, an output folder)."""
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    shutil.copy(cfg.EXAMPLES_DIR / "partial_memory_only.ipynb", submissions / f"{student}.ipynb")
    return submissions, tmp_path / "out"


def write_submissions(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(probe_search(), folder / "probe.ipynb")
    shutil.copy(cfg.EXAMPLES_DIR / "partial_memory_only.ipynb", folder / "partial.ipynb")
    return folder


def check_run(run: subprocess.CompletedProcess, out: Path) -> None:
    """Canary passed, the probe found no course file and earned full marks, the partial its points."""
    assert run.returncode == 0, run.stderr[-3000:]
    rows = read_grades(out)
    assert rows["probe"]["status"] == "graded" and rows["probe"]["isolation"] == "sandbox", rows["probe"]
    assert float(rows["probe"]["autograded_score"]) == float(rows["probe"]["autograded_max"])
    assert float(rows["partial"]["autograded_score"]) == 8
    lines = probe_lines(out, "probe")
    searched = next(line for line in lines if line.startswith("PROBE searched"))
    assert int(searched.split()[2]) > 1000, searched  # it walked the Python environment: the walk works
    found = [line for line in lines if line.startswith("PROBE found")]
    assert not found, f"the kernel can see course files: {found}"


@needs_sandbox
@pytest.mark.kernel
@pytest.mark.platform
def test_checkout_under_tmp_with_spaces_output_nested_inside_venv_outside(tmp_path, repository_copy):
    checkout = repository_copy(tmp_path / "course repo" / "w4 main")
    submissions = write_submissions(tmp_path / "sub missions")
    out = checkout / "out" / "run 1"  # the output inside the checkout, all under /tmp
    run = grade_from(checkout, sys.executable, submissions, out)
    check_run(run, out)


@needs_sandbox
@pytest.mark.kernel
@pytest.mark.platform
def test_checkout_under_home_venv_inside_submissions_under_srv_output_under_root(tmp_path, repository_copy):
    tag = secrets.token_hex(4)
    home, srv, root_out = Path(f"/home/w4-tester-{tag}"), Path(f"/srv/w4 submissions {tag}"), Path(f"/root/w4 grading {tag}")
    try:
        checkout = repository_copy(home / "courses" / "dl week 4")
        os.chmod(home, 0o700)  # a home folder others cannot enter
        (checkout / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)  # a venv inside the checkout
        submissions = write_submissions(srv)
        run = grade_from(checkout, str(checkout / ".venv" / "bin" / "python"), submissions, root_out / "out")
        check_run(run, root_out / "out")
    finally:
        for folder in (home, srv, root_out):
            shutil.rmtree(folder, ignore_errors=True)


@needs_sandbox
@pytest.mark.kernel
@pytest.mark.extended  # a fourth placement (about 30 s): `make test-all`; the three above stay in `make test`
def test_a_venv_under_a_home_folder_that_borrows_its_packages(tmp_path, repository_copy):
    """A plain venv under /home whose site-packages reaches another environment's through a
    .pth file (as a --system-site-packages venv or a shared install does)."""
    home = Path(f"/home/w4-venv-{secrets.token_hex(4)}")
    try:
        venv = home / "envs" / "course env"
        subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        (site,) = (venv / "lib").glob("python3*/site-packages")
        (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        checkout = repository_copy(tmp_path / "checkout")
        submissions = write_submissions(tmp_path / "submissions")
        run = grade_from(checkout, str(venv / "bin" / "python"), submissions, tmp_path / "out")
        check_run(run, tmp_path / "out")
    finally:
        shutil.rmtree(home, ignore_errors=True)


# --- the sandbox breaks: a fault of the machine, never a score ----------------------------------

@pytest.fixture()
def broken_bwrap(tmp_path) -> dict[str, str]:
    """An environment whose bwrap passes the availability probe but cannot start a kernel,
    as on a machine where namespaces stop working mid-run."""
    bin_dir = tmp_path / "broken-bin"
    bin_dir.mkdir()
    fake = bin_dir / "bwrap"
    # both kinds of kernel: a cold one (ipykernel_launcher) and a warm-kernel zygote (zygote.py)
    fake.write_text("#!/bin/sh\ncase \"$*\" in *ipykernel_launcher*|*zygote.py*)\n"
                    "  echo 'bwrap: Creating new namespace failed: Operation not permitted' >&2; exit 1;;\nesac\n"
                    f"exec {shutil.which('bwrap')} \"$@\"\n")
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@needs_sandbox
@pytest.mark.kernel
@pytest.mark.platform
def test_a_sandbox_that_cannot_start_stops_at_the_canary_and_scores_no_one(tmp_path, broken_bwrap):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    for name in ("reference", "blank"):
        shutil.copy(cfg.EXAMPLES_DIR / f"{name}.ipynb", submissions)
    out = tmp_path / "out"
    run = grade_from(cfg.ROOT, sys.executable, submissions, out, env=broken_bwrap)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "2 submission(s) could not be graded because of the grader or the machine" in run.stderr
    assert "the canary failed" in run.stderr and "did not start" in run.stderr
    for student, row in read_grades(out).items():
        assert row["status"].startswith("error: grader: not graded, the canary failed"), row
        assert row["autograded_score"] == "" and all(row[c] == "" for c in cfg.POINTS), f"{student} got a score: {row}"
    assert not list((out / "feedback").glob("*.html"))


@needs_sandbox
@pytest.mark.kernel
@pytest.mark.platform
def test_a_kernel_that_cannot_start_is_a_grader_error_and_is_graded_again_after_the_fix(tmp_path, broken_bwrap):
    submissions, out = one_submission(tmp_path, "alice")
    script = ("import sys; from pathlib import Path; from autograder.grading.grade import grade\n"
              "rows = grade(Path(sys.argv[1]), Path(sys.argv[2]), canary=False)\n"
              "print('\\n'.join(f'{r.student_id}|{r.status}|{r.score}' for r in rows))")
    broken = subprocess.run([sys.executable, "-c", script, str(submissions), str(out)], cwd=cfg.ROOT,
                            capture_output=True, text=True, timeout=600, env=broken_bwrap)
    assert broken.returncode == 0, broken.stderr[-2000:]
    student, status, score = broken.stdout.strip().splitlines()[-1].split("|")
    assert status.startswith("error: grader: ") and "kernel did not start" in status, status
    assert score == "None"
    row = read_grades(out)["alice"]
    assert row["autograded_score"] == "" and all(row[c] == "" for c in cfg.POINTS)
    # in the class gradebook: flagged, no autograded score; the export posts nothing for it
    assert gradebook_state(out, "alice") == (True, [None] * 7)
    (final,) = export.final_grades(out)
    assert final.score is None and not final.final and final.flags[0].startswith("error: grader: ")
    fixed = grade_from(cfg.ROOT, sys.executable, submissions, out)  # the machine is fixed: graded, not cached
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    row = read_grades(out)["alice"]
    assert row["status"] == "graded" and float(row["autograded_score"]) == 8
    flagged, scores = gradebook_state(out, "alice")
    assert not flagged and None not in scores and sum(scores) == 8


def gradebook_state(out, student: str) -> tuple[bool, list]:
    """(flagged?, the autograded cells' scores) of a student in the class gradebook."""
    from nbgrader.api import Gradebook

    from autograder.grading.results import graded_cells

    auto_ids, _ = graded_cells()
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}", cfg.COURSE_ID) as gb:
        nb = gb.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, student)
        return bool(nb.flagged), [g.auto_score for g in nb.grades if g.name in auto_ids]


# --- a machine without namespaces: graded, but loudly unsandboxed ------------------------------

@pytest.fixture()
def no_namespaces(tmp_path) -> dict[str, str]:
    """An environment whose bwrap cannot create namespaces (a container without the rights)."""
    bin_dir = tmp_path / "no-ns-bin"
    bin_dir.mkdir()
    (bin_dir / "bwrap").write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    (bin_dir / "bwrap").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_require_refuses_a_machine_that_cannot_sandbox(monkeypatch):
    from autograder.grading import grade as grade_module

    monkeypatch.setattr(cfg, "SANDBOX", "require")
    monkeypatch.setattr(sandbox, "available", lambda: "bubblewrap cannot create namespaces here")
    with pytest.raises(RuntimeError, match="'require' but bubblewrap cannot create namespaces here; no submission"):
        grade_module.sandbox_mode()
    monkeypatch.setattr(cfg, "SANDBOX", "auto")
    assert grade_module.sandbox_mode() == (False, "NONE: bubblewrap cannot create namespaces here")


@pytest.mark.kernel
@pytest.mark.platform
def test_auto_without_namespaces_grades_and_says_so_everywhere(tmp_path, no_namespaces):
    submissions, out = one_submission(tmp_path, "bob")
    run = grade_from(cfg.ROOT, sys.executable, submissions, out, env=no_namespaces)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "WARNING: kernels were NOT sandboxed (bubblewrap cannot create namespaces here" in run.stderr
    row = read_grades(out)["bob"]
    assert row["status"] == "graded" and float(row["autograded_score"]) == 8
    assert row["isolation"].startswith("NONE: bubblewrap cannot create namespaces here")
    doctor = subprocess.run([sys.executable, "-m", "autograder", "doctor", "--out", str(tmp_path / "doctor")],
                            cwd=cfg.ROOT, capture_output=True, text=True, timeout=600, env=no_namespaces)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr[-2000:]
    assert re.search(r"^sandbox\s+OFF .*bubblewrap cannot create namespaces here", doctor.stdout, re.M), doctor.stdout
    assert re.search(r"^canary\s+PASS: .*NONE: bubblewrap cannot", doctor.stdout, re.M), doctor.stdout
