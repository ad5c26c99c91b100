"""``python -m autograder slurm``: the batch scripts (no cluster), its input errors, and grading on a real
one-node Slurm cluster (``tests/slurm_cluster.py``): the merged class folder, a cancelled task and the rerun."""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import course_config as cfg
from autograder.__main__ import main
from autograder.grading.results import csv_header, graded_cells
from autograder.grading.shards import shard_of
from autograder.platforms.slurm import EXIT_FILE, SHARDS_FAILED, Plan, render_scripts
from tests.slurm_cluster import slurm_cluster  # noqa: F401  (the session's cluster fixture)

EXAMPLES = cfg.EXAMPLES_DIR
AUTO_IDS, MANUAL_IDS = graded_cells()
TASKS = 3
CLI_TIMEOUT_S = 900  # a whole class on the test cluster, on a loaded 2-core machine


def plan(tmp_path: Path, **options) -> Plan:
    return Plan(submissions=tmp_path / "subs", out=tmp_path / "out", tasks=4, **options)


def directives(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")]


def test_grade_script_asks_for_the_gpus_and_time_given(tmp_path):
    grade_script, merge_script = render_scripts(plan(tmp_path, gpus_per_task=2, time_minutes=45,
                                                     partition="gpu")).values()
    asked = directives(grade_script)
    assert "--gres=gpu:2" in asked and "--time=45" in asked and "--partition=gpu" in asked
    assert "--array=0-3" in asked
    assert '--shard "$SLURM_ARRAY_TASK_ID/4" --out "$shard"' in grade_script
    assert f"cd {cfg.ROOT}" in grade_script and f"{Path(sys.executable).absolute()} -m autograder grade" in grade_script
    merge = directives(merge_script)
    assert "--time=45" in merge and not any(d.startswith("--gres") for d in merge)  # merging needs no GPU
    for script in (grade_script, merge_script):
        assert "shared file system" in script
        assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_grade_script_without_gpus_or_time_leaves_them_to_the_cluster(tmp_path):
    grade_script, _ = render_scripts(plan(tmp_path)).values()
    assert not any(d.startswith(("--gres", "--time", "--partition")) for d in directives(grade_script))


def test_paths_with_spaces_are_quoted(tmp_path):
    grade_script, _ = render_scripts(Plan(tmp_path / "my subs", tmp_path / "out dir", 2)).values()
    assert f"'{tmp_path / 'my subs'}'" in grade_script and f"'{tmp_path / 'out dir'}'/shards/" in grade_script


def fake_sbatch(folder: Path, *, says: str = "", status: int = 1) -> str:
    """A PATH whose only ``sbatch`` prints ``says`` and exits ``status``."""
    folder.mkdir()
    (folder / "sbatch").write_text(f"#!/bin/sh\necho '{says}' >&2\nexit {status}\n")
    (folder / "sbatch").chmod(0o755)
    return str(folder)


@pytest.mark.parametrize("case, message", [
    ("no sbatch", "sbatch not found on PATH"),
    ("tasks 0", "--tasks 0: the number of array tasks (shards) must be at least 1"),
    ("no submissions", "nowhere: no such folder or .zip of submissions"),
    ("refused", "sbatch refused the array job: sbatch: error: invalid partition specified: nope"),
])
def test_bad_input_is_one_line_naming_the_problem(tmp_path, monkeypatch, capsys, case, message):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(EXAMPLES / "blank.ipynb", subs)
    bin_dir = fake_sbatch(tmp_path / "bin", says="sbatch: error: invalid partition specified: nope")
    monkeypatch.setenv("PATH", str(tmp_path / "empty") if case == "no sbatch" else bin_dir)
    args = ["slurm", str(tmp_path / "nowhere" if case == "no submissions" else subs), "--out", str(tmp_path / "out"),
            "--tasks", "0" if case == "tasks 0" else "2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_no_rerun_while_the_earlier_jobs_are_queued(tmp_path, monkeypatch, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(EXAMPLES / "blank.ipynb", subs)
    bin_dir = fake_sbatch(tmp_path / "bin", says="not to be called")
    (tmp_path / "bin" / "squeue").write_text("#!/bin/sh\necho 2\n")  # task 2 of the array job still pending
    (tmp_path / "bin" / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", bin_dir)
    (tmp_path / "out" / "slurm").mkdir(parents=True)
    (tmp_path / "out" / "slurm" / "jobs.json").write_text('{"array_job": "41", "merge_job": "42", "shards": [2]}')
    assert main(["slurm", str(subs), "--out", str(tmp_path / "out"), "--tasks", "3"]) == 2
    err = capsys.readouterr().err
    assert "job(s) 41, 42 of an earlier `slurm` run" in err and "scancel 41 42" in err and err.count("\n") == 1


def test_no_rerun_with_another_number_of_tasks(tmp_path, monkeypatch, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(EXAMPLES / "blank.ipynb", subs)
    monkeypatch.setenv("PATH", fake_sbatch(tmp_path / "bin", says="not to be called"))
    (tmp_path / "out" / "slurm").mkdir(parents=True)
    (tmp_path / "out" / "slurm" / "jobs.json").write_text('{"array_job": "41", "merge_job": "42", "tasks": 4}')
    assert main(["slurm", str(subs), "--out", str(tmp_path / "out"), "--tasks", "3"]) == 2
    err = capsys.readouterr().err
    assert "holds the shards of --tasks 4: run with --tasks 4 again, or grade into a new --out folder" in err, err


# --- on the cluster ---------------------------------------------------------------------------------------

def run_slurm(submissions: Path, out: Path, *, cancel: int | None = None) -> tuple[subprocess.CompletedProcess, str]:
    """``slurm SUBMISSIONS --out OUT --tasks 3 --wait``; with ``cancel``, ``scancel <array>_<cancel>`` as soon as
    the array job is submitted. Returns the finished run and the array job id."""
    command = [sys.executable, "-m", "autograder", "slurm", str(submissions), "--out", str(out), "--tasks", str(TASKS),
               "--wait"]
    process = subprocess.Popen(command, cwd=cfg.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    array_job = ""
    for line in process.stdout:
        lines.append(line)
        if line.startswith("array job "):
            array_job = line.split()[2].rstrip(":")
            if cancel is not None:
                subprocess.run(["scancel", f"{array_job}_{cancel}"], check=True)
            break
        if line.startswith("merge job") or line.startswith("nothing to submit"):
            break
    stdout, stderr = process.communicate(timeout=CLI_TIMEOUT_S)
    return subprocess.CompletedProcess(command, process.returncode, "".join(lines) + stdout, stderr), array_job


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {row["student_id"]: row for row in csv.DictReader(f)}


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.platform
def test_examples_on_three_tasks_merge_to_what_serial_grade_gives(slurm_cluster, tmp_path):  # noqa: F811
    """The examples over 3 array tasks: the merged grades.csv has grade's columns and, cell by cell, the scores a
    serial ``grade`` gives them (``examples/submissions/expected.json``, which tests/test_grade.py holds grade to)."""
    subs = tmp_path / "subs"
    subs.mkdir()
    for notebook in EXAMPLES.glob("*.ipynb"):
        shutil.copy(notebook, subs)
    (subs / "zz_corrupt.ipynb").write_text('{"cells": [')  # a copy that costs no kernel: graded 0 with its reason
    out = tmp_path / "out"
    run, array_job = run_slurm(subs, out)
    assert run.returncode == 0, run.stdout + run.stderr + (out / "slurm" / "logs").as_posix()
    assert f"array job {array_job}: {TASKS} task(s)" in run.stdout
    assert "merged 3 shard(s)" in run.stdout and re.search(r"^reference +21/21 +graded", run.stdout, re.M)
    with open(out / "grades.csv", newline="") as f:
        assert next(csv.reader(f)) == csv_header(AUTO_IDS, MANUAL_IDS)
    rows = read_csv(out / "grades.csv")
    expected = json.loads((EXAMPLES / "expected.json").read_text())
    assert set(rows) == set(expected) | {"zz_corrupt"}
    for student, cells in expected.items():
        assert rows[student]["status"] == "graded", rows[student]
        assert float(rows[student]["autograded_score"]) == sum(cells.values())
        for cell, score in cells.items():
            assert float(rows[student][cell]) == score, f"{student}: {cell} scored {rows[student][cell]}, expected {score}"
    assert rows["zz_corrupt"]["status"].startswith("error: zz_corrupt.ipynb: not valid JSON")
    # the class folder that grade writes
    for name in ("feedback/reference.html", "gradebook.db", "report.md", "similarity.html"):
        assert (out / name).is_file(), name
    assert (out / "slurm" / "grade.sbatch").is_file() and (out / "slurm" / "merge.sbatch").is_file()


def cheap_class(folder: Path) -> list[str]:
    """Two students per shard whose notebooks are not valid JSON: graded 0 without a kernel or a canary, so
    that the cluster's own behaviour is what takes the time. Returns the student ids."""
    folder.mkdir()
    chosen: dict[int, list[str]] = {i: [] for i in range(TASKS)}
    for n in range(100):
        name = f"student{n:02d}"
        if len(chosen[shard_of(name, TASKS)]) < 2:
            chosen[shard_of(name, TASKS)].append(name)
            (folder / f"{name}.ipynb").write_text('{"cells": [')
    return sorted(sum(chosen.values(), []))


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns
            for p in [folder / EXIT_FILE, *sorted((folder / ".course" / "results").glob("*.json"))]}


@pytest.mark.slow
@pytest.mark.platform
def test_a_cancelled_task_is_named_and_a_rerun_grades_only_its_shard(slurm_cluster, tmp_path):  # noqa: F811
    students = cheap_class(tmp_path / "subs")
    out = tmp_path / "out"
    cancelled = TASKS - 1  # pending while the first tasks take the CPUs of a small machine; else stopped running
    first, array_job = run_slurm(tmp_path / "subs", out, cancel=cancelled)
    assert first.returncode == SHARDS_FAILED, first.stdout + first.stderr
    assert f"shard {cancelled}/{TASKS} did not finish" in first.stderr
    assert "1 of 3 shard(s) not graded, nothing merged" in first.stderr
    assert not (out / "grades.csv").exists()
    kept = {i: mtimes(out / "shards" / str(i)) for i in range(TASKS) if i != cancelled}
    assert json.loads((out / "slurm" / "jobs.json").read_text())["array_job"] == array_job
    assert all(len(files) == 3 for files in kept.values()), kept  # exit status and two results each

    time.sleep(0.05)  # a regraded file would get a later mtime than these
    second, rerun_job = run_slurm(tmp_path / "subs", out)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"kept: {', '.join(str(i) for i in kept)} of {TASKS}" in second.stdout
    assert f"array job {rerun_job}: 1 task(s), shard i/{TASKS} into {out / 'shards'}/i: {rerun_job}_{cancelled}" \
        in second.stdout and rerun_job != array_job
    assert {i: mtimes(out / "shards" / str(i)) for i in kept} == kept  # the other shards were not graded again
    rows = read_csv(out / "grades.csv")
    assert sorted(rows) == students and all("not valid JSON" in r["status"] for r in rows.values())

    third, _ = run_slurm(tmp_path / "subs", out)
    assert third.returncode == 0 and "nothing to submit" in third.stdout, third.stdout + third.stderr
