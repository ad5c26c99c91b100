"""Grade one submission with nbgrader, in a process of its own; write its result as JSON.

``grade.py`` starts one of these per submission and reads back the result file
(``autograder/grading/results.py`` says what it holds). The worker owns a small nbgrader course folder:
the source linked from the run's template, a copy of the template gradebook, and the student's
submission. When sandboxing is on, nbgrader's kernel is the sandboxed kernel of
``autograder/kernel/sandbox.py``, reached over Unix sockets (it has no network).

A submission whose cell ran out of time is graded a second time before its score counts: on a
loaded machine the first attempt's timeout may be the machine's fault, not the student's.
``grade.py`` runs ``child_main`` in a process forked from its fork server; there is no command line.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import course_config as cfg
from autograder.grading.results import NOTE_PREFIX, GraderFault, Task, WorkerResult, graded_cells, read_task
from autograder.grading.machine import kernel_sandbox
from autograder.grading.settings import thread_env
from autograder.notebook_code import nbgrader_meta


def autograded_path(course: Path, kind: str, student_id: str) -> Path:
    return course / kind / student_id / cfg.ASSIGNMENT_ID


def prepare_course(task: Task) -> Path:
    """Fresh course folder: source linked, gradebook copied, submission in submitted/."""
    course = Path(task.course)
    if course.exists():
        shutil.rmtree(course)
    course.mkdir(parents=True)
    (course / "source").symlink_to(Path(task.template) / "source", target_is_directory=True)
    shutil.copyfile(Path(task.template) / "gradebook.db", course / "gradebook.db")
    submitted = autograded_path(course, "submitted", task.student_id)
    submitted.mkdir(parents=True)
    shutil.copyfile(task.submission, submitted / f"{cfg.NOTEBOOK_NAME}.ipynb")
    return course


def kernel_files(task: Task, course: Path) -> dict[str, str]:
    """What the kernel sees of the course, read-only: the notebook's data and figures, and a
    passwd naming its user."""
    from autograder.kernel import sandbox

    assignment = Path(task.template) / "source" / cfg.ASSIGNMENT_ID
    files = {f"{sandbox.HOME}/{name}": str(assignment / name) for name in ("data", "figures")
             if (assignment / name).is_dir()}
    files.update(sandbox.user_files(course, task.sandbox_uid))
    return files


def sandbox_setup(task: Task, course: Path) -> tuple[dict, str | None, Path]:
    """Kernelspec and config of the sandboxed kernel; return (nbgrader config, cgroup, socket folder)."""
    from autograder.kernel import sandbox

    cgroup, controllers = None, []
    if sandbox.cgroups_writable():  # the kernel's memory, processes and CPU share (its threads' cores)
        cgroup = f"w4-grading/{task.student_id}-{os.getpid()}"
        controllers = sandbox.create_cgroup(cgroup, cfg.KERNEL_MEMORY_MB * 2**20, cfg.KERNEL_MAX_PROCESSES,
                                            cpus=task.threads)
    if task.zygote:  # a folder of this submission's own in the slot's, which its zygote's kernels see
        ipc = Path(task.zygote["ipc"]) / f"k-{os.getpid()}"
        ipc.mkdir(mode=0o700)
    else:  # Unix socket paths are limited to 107 bytes: a short folder, not one under the output
        ipc = Path(tempfile.mkdtemp(prefix="w4k-", dir="/tmp" if os.path.isdir("/tmp") else None))
    os.chown(ipc, task.sandbox_uid, task.sandbox_uid)
    config = kernel_sandbox(task.sandbox_uid, kernel_files(task, course), str(ipc), task.threads, cgroup=cgroup,
                            controllers=controllers)
    jupyter = course / ".jupyter"
    if task.zygote:
        from autograder.grading import warm

        info = warm.ZygoteInfo(**task.zygote)
        warm.launcher_kernelspec(jupyter, info, warm.launch_config(course / "launch.json", info, config, info.ipc))
    else:
        sandbox.write_kernelspec(jupyter, config.write(course / "sandbox.json"))
    os.environ["JUPYTER_PATH"] = str(jupyter)
    extra = {"GuardedExecute": {"kernel_name": sandbox.KERNEL_NAME, "sandbox_uid": task.sandbox_uid},
             "KernelManager": {"transport": "ipc", "ip": str(ipc / "kernel")}}
    return extra, cgroup, ipc


def warm_setup(task: Task, course: Path) -> dict:
    """Unsandboxed warm kernels: the kernelspec of the slot's zygote; return the nbgrader config."""
    from autograder.grading import warm
    from autograder.kernel import sandbox

    info = warm.ZygoteInfo(**task.zygote)
    jupyter = course / ".jupyter"
    warm.launcher_kernelspec(jupyter, info, warm.launch_config(course / "launch.json", info, None, ""))
    os.environ["JUPYTER_PATH"] = str(jupyter)
    return {"GuardedExecute": {"kernel_name": sandbox.KERNEL_NAME}}


def autograde_once(api, task: Task, course: Path) -> WorkerResult:
    """One nbgrader autograde of the submission: cells, failures, notes and timeouts, from the
    scores nbgrader stored and the executor's own record (GraderFault if nbgrader fails)."""
    import json

    import nbformat

    record_path = course / "record.json"
    record_path.unlink(missing_ok=True)
    outcome = api.autograde(cfg.ASSIGNMENT_ID, task.student_id, force=True, create=True)
    if not outcome.get("success"):
        print(outcome.get("log"), outcome.get("error"), sep="\n", file=sys.stderr)  # kept in <student>.log
        raise GraderFault("nbgrader autograde failed: " + cause(f"{outcome.get('log')}\n{outcome.get('error')}"))
    record = json.loads(record_path.read_text())
    auto_ids, _ = graded_cells()
    notebook = autograded_path(course, "autograded", task.student_id) / f"{cfg.NOTEBOOK_NAME}.ipynb"
    notes = record["notes"]
    present = {nbgrader_meta(c).get("grade_id") for c in nbformat.read(notebook, as_version=4).cells}
    for missing in sorted(set(auto_ids) - present):
        notes.setdefault(missing, []).append("this test cell is missing from the submission (deleted?): 0 points")
    from autograder.grading.gradebook import submission_records

    records = submission_records(api.coursedir.db_url, task.student_id)  # what nbgrader stored
    cells = {gid: float((records["grades"].get(gid) or {}).get("auto_score") or 0.0) for gid in auto_ids}
    failed = {gid: f"AssertionError: {v['message']}" for gid, v in record["verdicts"].items() if v["share"] == 0}
    return WorkerResult(task.student_id, cells=cells, failed=failed, notes=notes, timeouts=record["timeouts"],
                        lost=record["lost"],
                        cell_seconds=record["seconds"], gradebook=records)


def run(task: Task) -> WorkerResult:
    """Autograde (twice if a cell timed out) and build feedback; return the result, also written
    to ``task.result``. Any failure of the grader becomes a ``grader_error`` result."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    from autograder.kernel import processes, sandbox
    from autograder.grading.settings import kernel_environment, nbgrader_config, venv_on_path

    start = time.perf_counter()
    result = WorkerResult(task.student_id)
    cgroup, ipc = None, None
    try:
        import torch

        torch.set_num_threads(1)  # the judge's own tensors are tiny: the cores are the kernel's
        venv_on_path()
        # the repo for the sandbox's own commands, whatever the cwd; an install found through
        # PYTHONPATH (pip --target, as on a GPU machine) stays visible to unsandboxed kernels
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(cfg.ROOT)]
        os.environ["PYTHONPATH"] = os.pathsep.join([str(cfg.ROOT), *paths])
        os.environ.update(kernel_environment())  # DEVICE_POLICY; the sandbox passes CUDA_VISIBLE_DEVICES on
        course = prepare_course(task)
        config = nbgrader_config(course)
        config.Execute.timeout = config.ExecutePreprocessor.timeout = int(task.default_timeout)
        template = Path(task.template)
        notebook = Path(cfg.ASSIGNMENT_ID) / f"{cfg.NOTEBOOK_NAME}.ipynb"
        config.merge(Config({"GuardedExecute": {"cell_timeouts": task.cell_timeouts,
                                                "source_notebook": str(template / "source" / notebook),
                                                "record_path": str(course / "record.json")},
                             "RepairStructure": {"release_notebook": str(template / "release" / notebook)}}))
        if task.sandbox_uid is not None:
            extra, cgroup, ipc = sandbox_setup(task, course)
            config.merge(Config(extra))
        else:
            os.environ.update(thread_env(task.threads))
            if task.zygote:
                config.merge(Config(warm_setup(task, course)))
        Path(config.Exchange.root).mkdir(parents=True, exist_ok=True)
        api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
        phases = {"prepare": time.perf_counter() - start}
        result = autograde_once(api, task, course)
        phases["autograde"] = time.perf_counter() - start - sum(phases.values())
        first = result
        if first.timeouts or first.lost:  # the machine may have been busy, or killed the kernel:
            result = autograde_once(api, task, course)  # grade again, keep the second attempt
            add_second_grading_notes(first, result)
        feedback = api.generate_feedback(cfg.ASSIGNMENT_ID, task.student_id, force=True)
        html = autograded_path(course, "feedback", task.student_id) / f"{cfg.NOTEBOOK_NAME}.html"
        if feedback.get("success") and html.is_file():
            if result.retried:
                add_retry_note(html, result.notes)
            result.feedback_html = str(html)
        phases["feedback"] = time.perf_counter() - start - sum(phases.values())
        result.phases = {name: round(seconds, 3) for name, seconds in phases.items()}  # where the time went
    except GraderFault as fault:
        result = WorkerResult(task.student_id, grader_error=str(fault))
    except Exception as error:  # the grader's own bug or the machine (disk full...): never a score
        traceback.print_exc()  # into <student>.log
        result = WorkerResult(task.student_id, grader_error=f"{type(error).__name__}: {error}"[:300])
    finally:
        if task.sandbox_uid is not None:
            processes.kill_user(task.sandbox_uid)
        if cgroup:
            sandbox.remove_cgroup(cgroup)
        if ipc:
            shutil.rmtree(ipc, ignore_errors=True)
    result.seconds = time.perf_counter() - start
    result.write(Path(task.result))
    return result


def add_second_grading_notes(first: WorkerResult, second: WorkerResult) -> None:
    """Say, on each cell that made the worker grade the notebook again, why and what the second time saw,
    and on a cell that stopped only the second grading, the one kept, that it did."""
    kinds = [  # the cells, the first time and the second; what they did; the note if they did it again
        (first.timeouts, second.timeouts, "ran past the time limit", "it ran past the limit again"),
        (first.lost, second.lost, "lost the kernel (it died)", "the kernel died there again"),
    ]
    reasons = []
    for cells, again_cells, what, again in kinds:
        if cells:
            reasons.append(f"{', '.join(cells)} {what}, so the notebook was graded a second time")
            for cell in cells:
                second.notes.setdefault(cell, []).append(reasons[-1] + (f"; {again}" if cell in again_cells else ""))
    new = {"ran past its time limit": second.timeouts, "lost the kernel": second.lost}
    for happened, cells in new.items():
        for cell in cells:
            if cell not in first.timeouts and cell not in first.lost:
                second.notes.setdefault(cell, []).append(f"{'; '.join(reasons)}; in the second grading, which "
                                                         f"counts, {cell} {happened}")
    second.retried = True


def add_retry_note(html: Path, notes: dict[str, list[str]]) -> None:
    """Say at the top of the feedback that the notebook was graded twice, and why."""
    from autograder.pages import render

    lines = sorted({line for cell_notes in notes.values() for line in cell_notes if "graded a second time" in line})
    banner = render("feedback_banner.html.j2", prefix=NOTE_PREFIX, lines=lines).strip()
    text = html.read_text()
    html.write_text(text.replace("<body>", "<body>" + banner, 1) if "<body>" in text else banner + text)


def cause(text: str) -> str:
    """The most specific error in nbgrader's log: the last ``SomeError: message`` line other than
    nbgrader's generic wrapper (which only says to read the traceback above it)."""
    import re

    found = [m.group(1) for m in re.finditer(r"\b(\w+(?:Error|Failure|Exception): .+)", text)
             if not m.group(1).startswith("NbGraderException")]
    if found:
        return found[-1].strip()[:300]
    lines = [line for line in text.strip().splitlines() if line.strip() and line.strip() != "None"]
    return lines[-1].strip()[:300] if lines else "no message"


def worker_cgroup(pid: int) -> str:
    """The memory cgroup of the worker process ``pid`` (``grade.py`` removes it when the worker ends)."""
    return f"w4-grading/worker-{pid}"


def child_main(task_path: str, log_path: str) -> None:
    """Entry point of a worker forked by ``grade.py``: own session (killed as a group), own log, own
    memory cgroup where cgroups are writable."""
    from autograder.kernel import sandbox

    os.setsid()  # the grader kills the whole group on a timeout, kernel included
    task = read_task(Path(task_path))
    if task.sandbox_uid is not None and sandbox.cgroups_writable():  # sandboxed kernels leave it for their own
        name = worker_cgroup(os.getpid())
        sandbox.join_cgroup(name, sandbox.create_cgroup(name, cfg.WORKER_MEMORY_MB * 2**20))
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    run(task)
