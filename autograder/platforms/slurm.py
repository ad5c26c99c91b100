"""Grade a class on a Slurm cluster: an array job of one task per shard, then a merge job.

    python -m autograder slurm SUBMISSIONS --out DIR --tasks N [--partition P] [--gpus-per-task G]
                               [--time MINUTES] [--wait]

Task ``i`` of the array job runs ``grade SUBMISSIONS --shard i/N --out DIR/shards/i`` (the shards of
``autograder/grading/shards.py``: each runs its own canary, and a task whose sandbox cannot start leaves
``error: grader:`` rows, never zeros); the merge job waits for every task to end
(``--dependency=afterany``) and merges the shards into ``DIR``, the class folder that ``grade
--out DIR`` writes (grades.csv, feedback, gradebook, report, similarity). Files in ``DIR``:

    DIR/slurm/grade.sbatch       the array job's script    DIR/slurm/merge.sbatch   the merge job's
    DIR/slurm/logs/              each task's and the merge's output (grade-<job>_<i>.out, merge-<job>.out)
    DIR/shards/<i>/              shard i's ``grade --out`` folder, and ``slurm-exit``: grade's exit status,
                                 written when the task's grade ended (absent: cancelled, killed, timed out)
    DIR/slurm/verdict.json       the merge job's exit status and message
    DIR/slurm/jobs.json          the last submission's job ids and N: no rerun while they are queued or running,
                                 nor with another N (each shard's students depend on N)

A shared file system is assumed, as on every Slurm cluster: the nodes see the checkout, its venv
(``sys.executable`` of the submitting command), the submissions and ``DIR`` at the same paths.
Running the command again submits only the shards that are not complete (``complete_shards``) and
the merge; the others' results stay, and a resubmitted shard reuses the results it already holds.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

import course_config as cfg
from autograder.errors import InputError, SetupError
from autograder.files import atomic_write

EXIT_FILE = "slurm-exit"  # in DIR/shards/<i>: grade's exit status, once the task's grade ended
VERDICT = Path("slurm") / "verdict.json"  # in DIR: the merge job's exit status and message
JOBS = Path("slurm") / "jobs.json"  # in DIR: the job ids of the last submission
SHARDS_FAILED = 3  # exit status when a task failed or was cancelled (grade's own are 0, 1 and 2)
JOB_NAME = "autograder"
POLL_S = 2.0  # seconds between two squeue calls while following the jobs
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"  # autograder/templates


class SlurmError(SetupError):
    """Slurm is missing or refused a job; the message names the command and what it said."""


@dataclass(frozen=True)
class Plan:
    """What to grade on the cluster and how: absolute paths, as the nodes will see them."""
    submissions: Path
    out: Path
    tasks: int
    partition: str | None = None
    gpus_per_task: int = 0
    time_minutes: int | None = None
    python: Path = field(default_factory=lambda: Path(sys.executable).absolute())  # the venv's, unresolved
    root: Path = cfg.ROOT  # the checkout: the tasks' working folder

    @property
    def folder(self) -> Path:
        return self.out / "slurm"

    @property
    def grade_script(self) -> Path:
        return self.folder / "grade.sbatch"

    @property
    def merge_script(self) -> Path:
        return self.folder / "merge.sbatch"

    @property
    def logs(self) -> Path:
        return self.folder / "logs"


@dataclass
class Submitted:
    """What one ``slurm`` command handed to Slurm: job ids (None: not submitted) and shards."""
    plan: Plan
    array_job: str | None
    merge_job: str | None
    shards: list[int]  # submitted in the array job
    kept: list[int]  # complete from an earlier run: not submitted


def make_plan(submissions: Path, out: Path, *, tasks: int, partition: str | None = None, gpus_per_task: int = 0,
              time_minutes: int | None = None, sbatch: str = "sbatch") -> Plan:
    """Check the command's input and return its ``Plan``; raise ``InputError`` or ``SlurmError`` naming the fix."""
    if shutil.which(sbatch) is None:
        raise SlurmError(f"{sbatch} not found on PATH: run this on a Slurm cluster's login node "
                         "(where `sbatch --version` works; some clusters need `module load slurm` first)")
    if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 1:
        raise InputError(f"--tasks {tasks}: the number of array tasks (shards) must be at least 1")
    if gpus_per_task < 0:
        raise InputError(f"--gpus-per-task {gpus_per_task}: must be 0 (no GPU) or more")
    if time_minutes is not None and time_minutes < 1:
        raise InputError(f"--time {time_minutes}: the time limit of each task, in minutes, must be at least 1")
    if partition is not None and not partition.strip():
        raise InputError("--partition: empty name; leave the option out for the cluster's default partition")
    submissions = Path(submissions).absolute()
    if not submissions.exists():
        raise InputError(f"{submissions}: no such folder or .zip of submissions")
    return Plan(submissions, Path(out).absolute(), tasks, partition, gpus_per_task, time_minutes)


def render_scripts(plan: Plan) -> dict[Path, str]:
    """The two batch scripts' text, by the path they are written to; reads the templates, writes nothing."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False,  # shell, not HTML
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["q"] = lambda value: shlex.quote(str(value))  # every path and name passes through it
    context = dict(name=JOB_NAME, tasks=plan.tasks, submissions=plan.submissions, out=plan.out, root=plan.root,
                   python=plan.python, bin=plan.python.parent, logs=plan.logs, partition=plan.partition,
                   gpus=plan.gpus_per_task, time=plan.time_minutes, exit_file=EXIT_FILE, verdict=VERDICT,
                   script=plan.grade_script, grade_script=plan.grade_script)
    return {plan.grade_script: env.get_template("slurm_grade.sbatch.j2").render(**context),
            plan.merge_script: env.get_template("slurm_merge.sbatch.j2").render(**context)}


def write_scripts(plan: Plan) -> tuple[Path, Path]:
    """Write ``DIR/slurm/grade.sbatch`` and ``merge.sbatch`` (kept for the instructor) and the logs folder."""
    plan.logs.mkdir(parents=True, exist_ok=True)
    for path, text in render_scripts(plan).items():
        path.write_text(text)
        path.chmod(0o755)
    return plan.grade_script, plan.merge_script


def shard_dir(out: Path, index: int) -> Path:
    return Path(out) / "shards" / str(index)


def exit_status(folder: Path) -> int | None:
    """grade's exit status that the task wrote into ``folder``; None when its grade did not end."""
    try:
        return int((Path(folder) / EXIT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def complete_shards(plan: Plan) -> list[int]:
    """The shards whose task ended (exit status 0, or 1 for grader faults of files nobody owns) and whose folder
    holds a current result of every submission that shard grades now: same notebook, same grader, no grader fault.

    Reads the submissions (a .zip is unpacked into a temporary folder) and each shard's result cache; writes nothing.
    """
    from autograder.grading.results import grader_fingerprint
    from autograder.grading.shards import select_shard
    from autograder.grading.store import stored_result
    from autograder.grading.submissions import find_submissions

    fingerprint = grader_fingerprint()
    with tempfile.TemporaryDirectory(prefix="slurm-check-") as scratch:
        folder = plan.submissions
        if folder.is_file() and folder.suffix == ".zip":
            from autograder.grading.submissions import extract_zip

            folder = extract_zip(folder, Path(scratch) / "unzipped")
        found = find_submissions(folder, repaired_dir=Path(scratch) / "repaired")
        complete = []
        for index in range(plan.tasks):
            shard = shard_dir(plan.out, index)
            if exit_status(shard) not in (0, 1):
                continue
            results = shard / ".course" / "results"
            if all(stored_result(results, s, fingerprint)[0] is not None
                   for s in select_shard(found, index, plan.tasks) if not s.fault):
                complete.append(index)
    return complete


def sbatch(arguments: Sequence[str], *, what: str) -> str:
    """Run ``sbatch --parsable ARGUMENTS`` here (the jobs' ``SLURM_SUBMIT_DIR``; the scripts change to the
    checkout); return the job id; ``SlurmError`` with sbatch's own words if refused."""
    done = subprocess.run(["sbatch", "--parsable", *arguments], capture_output=True, text=True)
    if done.returncode != 0:
        said = done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}"
        raise SlurmError(f"sbatch refused the {what}: {said}")
    return done.stdout.strip().split(";")[0]  # "<id>" or "<id>;<cluster>"


def up_to_date(plan: Plan, kept: list[int]) -> bool:
    """Every shard complete and merged since: the verdict is newer than every shard's exit status."""
    verdict = plan.out / VERDICT
    if len(kept) < plan.tasks or not verdict.is_file():
        return False
    try:
        if json.loads(verdict.read_text()).get("exit_status") not in (0, 1):
            return False
    except (OSError, json.JSONDecodeError):
        return False
    return all(verdict.stat().st_mtime >= (shard_dir(plan.out, i) / EXIT_FILE).stat().st_mtime for i in kept)


def submit(plan: Plan) -> Submitted:
    """Write the scripts, then submit the array job for the shards not complete and the merge job after it.

    A shard's old exit status is removed before its task is submitted, so that only this run's counts.
    Everything complete and merged: nothing is submitted (both job ids None).
    """
    last = last_submission(plan.out)
    if last.get("tasks", plan.tasks) != plan.tasks:  # each shard's students depend on N
        raise InputError(f"{plan.out} holds the shards of --tasks {last['tasks']}: run with --tasks {last['tasks']} "
                         "again, or grade into a new --out folder")
    earlier = still_queued(plan.out)
    if earlier:
        raise SlurmError(f"job(s) {', '.join(earlier)} of an earlier `slurm` run into {plan.out} are still queued or "
                         f"running: wait for them (squeue -j {','.join(earlier)}) or cancel them (scancel "
                         f"{' '.join(earlier)}), then run this again")
    write_scripts(plan)
    kept = complete_shards(plan)
    todo = [i for i in range(plan.tasks) if i not in kept]
    if not todo and up_to_date(plan, kept):
        return Submitted(plan, None, None, [], kept)
    for index in todo:
        (shard_dir(plan.out, index) / EXIT_FILE).unlink(missing_ok=True)
    (plan.out / VERDICT).unlink(missing_ok=True)
    array_job = None
    if todo:
        # the option given on the command line overrides the script's own --array=0-(N-1)
        array_job = sbatch([f"--array={','.join(map(str, todo))}", str(plan.grade_script)], what="array job")
    after = [f"--dependency=afterany:{array_job}"] if array_job else []
    merge_job = sbatch([*after, str(plan.merge_script)], what="merge job")
    (plan.out / JOBS).write_text(json.dumps({"array_job": array_job, "merge_job": merge_job, "shards": todo,
                                             "tasks": plan.tasks}))
    return Submitted(plan, array_job, merge_job, todo, kept)


def last_submission(out: Path) -> dict:
    """``DIR/slurm/jobs.json``: the job ids, shards and shard count of the last submission into ``out``; {} if none."""
    try:
        return dict(json.loads((Path(out) / JOBS).read_text()))
    except (OSError, ValueError, TypeError):
        return {}


def still_queued(out: Path) -> list[str]:
    """The jobs of the last submission into ``out`` that Slurm still queues or runs: submitting the same
    shards again beside them would grade them twice at once."""
    jobs = last_submission(out)
    return [job for job in (jobs.get("array_job"), jobs.get("merge_job")) if job and active(job)]


def shown(path: Path) -> str:
    """``path`` as the user sees it: relative to the folder the command was run in when below it (in a job, the
    folder it was submitted from: ``SLURM_SUBMIT_DIR``); the scripts hold absolute paths."""
    try:
        return str(Path(path).relative_to(os.environ.get("SLURM_SUBMIT_DIR") or Path.cwd()))
    except ValueError:
        return str(path)


def describe(submitted: Submitted) -> str:
    """What was submitted, as printed by the command: scripts, job ids, tasks, shards kept."""
    plan = submitted.plan
    lines = [f"batch scripts: {shown(plan.grade_script)}, {shown(plan.merge_script)} (a shared file system is "
             "assumed: every node reads and writes these paths)"]
    if submitted.kept:
        lines.append(f"shards complete from an earlier run, kept: {', '.join(map(str, submitted.kept))} of {plan.tasks}")
    if submitted.array_job:
        tasks = ", ".join(f"{submitted.array_job}_{i}" for i in submitted.shards)
        lines.append(f"array job {submitted.array_job}: {len(submitted.shards)} task(s), shard i/{plan.tasks} "
                     f"into {shown(plan.out / 'shards')}/i: {tasks}")
    if submitted.merge_job:
        after = f" after array job {submitted.array_job} ends (afterany)" if submitted.array_job else ""
        lines.append(f"merge job {submitted.merge_job}: merges the shards into {shown(plan.out)}{after}")
    else:
        lines.append(f"nothing to submit: every shard is complete and merged into {shown(plan.out / 'grades.csv')}")
    return "\n".join(lines)


def active(job: str) -> set[str]:
    """The array task ids (``%K``; ``N/A`` for a job that is no array) of ``job`` still queued or running."""
    done = subprocess.run(["squeue", "--noheader", "--array", "--jobs", job, "--format=%K"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:  # ended long enough ago for slurmctld to forget it
            return set()
        raise SlurmError(f"squeue could not list job {job}: {done.stderr.strip() or done.returncode}")
    return {line.strip() for line in done.stdout.splitlines() if line.strip()}


def follow(submitted: Submitted, *, progress: bool = True, poll_s: float = POLL_S) -> tuple[int, str]:
    """Wait for the array and merge jobs to end (a progress bar of tasks on stderr); return the merge's verdict,
    ``(exit status, message)``: ``SHARDS_FAILED`` when a shard or the merge did not finish, else ``grade``'s."""
    plan = submitted.plan
    bar = None
    if progress and submitted.shards:
        from tqdm import tqdm

        bar = tqdm(total=len(submitted.shards), desc="slurm tasks", unit="task", file=sys.stderr)
    ended = 0
    while True:
        running = active(submitted.array_job) if submitted.array_job else set()
        now = sum(1 for i in submitted.shards if str(i) not in running)
        if bar is not None and now > ended:
            bar.update(now - ended)
        ended = max(ended, now)
        if not running and not (submitted.merge_job and active(submitted.merge_job)):
            break
        time.sleep(poll_s)
    if bar is not None:
        bar.close()
    return read_verdict(plan.out, submitted.merge_job)


def read_verdict(out: Path, merge_job: str | None = None) -> tuple[int, str]:
    """The merge job's ``(exit status, message)``; ``SHARDS_FAILED`` and why when it wrote none."""
    try:
        verdict = json.loads((Path(out) / VERDICT).read_text())
        return int(verdict["exit_status"]), str(verdict["message"])
    except (OSError, ValueError, KeyError, TypeError):
        log = f" (its output: {shown(Path(out) / 'slurm' / 'logs')}/merge-{merge_job}.out)" if merge_job else ""
        return SHARDS_FAILED, (f"the merge job {merge_job or ''} ended without a verdict{log}: cancelled, or it failed "
                               "before merging; run the same command again")


def merge_job(out: Path, tasks: int) -> tuple[int, str]:
    """The merge job's work: merge ``DIR/shards/0..tasks-1`` into ``DIR`` unless a shard did not finish.

    Writes the class folder (``merge_class``) and ``DIR/slurm/verdict.json``; returns
    ``(exit status, message)``: ``SHARDS_FAILED`` naming each shard that did not finish (nothing merged),
    else 0, or 1 naming the grader faults, as ``grade`` exits.
    """
    from collections import Counter

    from autograder.grading.results import GradeRow, fault_summary
    from autograder.grading.shards import read_grades

    from autograder.platforms.class_merge import merge_class

    out = Path(out)
    folders = [shard_dir(out, i) for i in range(tasks)]
    unfinished = []
    for index, folder in enumerate(folders):
        status = exit_status(folder)
        logs = sorted((out / "slurm" / "logs").glob(f"grade-*_{index}.out"), key=lambda p: p.stat().st_mtime)
        where = f"; its output: {shown(logs[-1])}" if logs else ""
        if status is None:
            unfinished.append(f"shard {index}/{tasks} did not finish (its task failed, was cancelled, ran out of "
                              f"time or memory, or its node failed{where})")
        elif status not in (0, 1):
            unfinished.append(f"shard {index}/{tasks}: grade exited with status {status}{where}")
    if unfinished:
        code = SHARDS_FAILED
        message = (f"error: {len(unfinished)} of {tasks} shard(s) not graded, nothing merged: "
                   + "; ".join(unfinished) + ". Run the same `slurm` command again: it submits only these.")
    else:
        path = merge_class(folders, out)
        header, rows = read_grades(path)
        status_column = header.index("status")
        faults = fault_summary([GradeRow(r[0], None, 0.0, {}, r[status_column]) for r in rows])
        counts = Counter(r[status_column].split(":")[0] for r in rows)
        code = 1 if faults else 0
        message = f"error: {faults}" if faults else (
            f"merged {tasks} shard(s) into {shown(path)}: {len(rows)} submission(s), "
            + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    (out / VERDICT).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out / VERDICT, json.dumps({"exit_status": code, "message": message}, indent=1))
    return code, message


def grades_table(out: Path) -> str:
    """The merged ``grades.csv`` in short: student, score, status and device, one line each."""
    from autograder.grading.shards import read_grades

    header, rows = read_grades(Path(out) / "grades.csv")
    col = {name: header.index(name) for name in ("autograded_score", "autograded_max", "status", "device")}
    lines = [["student", "score", "status", "device"]] + [
        [r[0], f"{r[col['autograded_score']] or '-'}/{r[col['autograded_max']]}", r[col["status"]], r[col["device"]]]
        for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)) + "  " + line[3] for line in lines)
