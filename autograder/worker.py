"""Grade one submission with nbgrader, in a process of its own; write its result as JSON.

``grade.py`` starts one of these per submission (inside a network namespace with only
loopback when the machine allows it) and reads back ``result.json``. The worker owns a small
nbgrader course folder: the source linked from the run's template, a copy of the template
gradebook, and the student's submission. When sandboxing is on, nbgrader's kernel is the
sandboxed kernel of ``autograder/sandbox.py``.

    python -m autograder.worker TASK.json
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import course_config as cfg


@dataclass
class Task:
    student_id: str
    submission: str  # path of the student's notebook
    course: str  # this worker's nbgrader course folder
    template: str  # the run's template course (source/ and gradebook.db)
    result: str  # where to write the result JSON
    cell_timeout: int
    sandbox_uid: int | None  # None: run the kernel as the grader's own user
    hide: list[str]  # folders the sandboxed kernel must not see
    threads: int  # CPU threads for the kernel's numerical libraries


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


def sandbox_setup(task: Task, course: Path) -> tuple[dict, str | None]:
    """Kernelspec and config of the sandboxed kernel; return (nbgrader config, cgroup name)."""
    from autograder import sandbox

    keep = sorted({sys.prefix, sys.base_prefix})
    cgroup = None
    if sandbox.cgroups_writable():
        cgroup = f"w4-grading/{task.student_id}-{os.getpid()}"
        sandbox.create_cgroup(cgroup, cfg.KERNEL_MEMORY_MB * 2**20, cfg.KERNEL_MAX_PROCESSES)
    config = sandbox.SandboxConfig(
        uid=task.sandbox_uid, gid=task.sandbox_uid, hide=task.hide, keep=keep,
        copy_in=[str(course / "source" / cfg.ASSIGNMENT_ID / name) for name in ("data", "figures")],
        memory_bytes=cfg.KERNEL_MEMORY_MB * 2**20, max_processes=cfg.KERNEL_MAX_PROCESSES, cgroup=cgroup,
        env=thread_env(task.threads))
    jupyter = course / ".jupyter"
    sandbox.write_kernelspec(jupyter, config.write(course / "sandbox.json"))
    os.environ["JUPYTER_PATH"] = str(jupyter)
    return {"GuardedExecute": {"kernel_name": sandbox.KERNEL_NAME, "sandbox_uid": task.sandbox_uid,
                               "cleanup_command": [sys.executable, "-m", "autograder.sandbox", "--kill",
                                                   str(task.sandbox_uid)]}}, cgroup


def thread_env(threads: int) -> dict[str, str]:
    # one kernel per core share: oversubscribed OpenMP threads slow torch down many times
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def read_scores(api, student_id: str, auto_ids: list[str]) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(api.coursedir.db_url, cfg.COURSE_ID) as gb:
        notebook = gb.find_submission_notebook(cfg.NOTEBOOK_NAME, cfg.ASSIGNMENT_ID, student_id)
        by_id = {grade.name: grade for grade in notebook.grades}
        return {gid: float(by_id[gid].auto_score or 0.0) if gid in by_id else 0.0 for gid in auto_ids}


def run(task: Task) -> dict:
    """Autograde and build feedback; return the result (also written to ``task.result``)."""
    import nbformat
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    from autograder import sandbox
    from autograder.grade import failed_cells, graded_cells, notes_of
    from autograder.settings import kernel_environment, nbgrader_config, venv_on_path

    start = time.perf_counter()
    venv_on_path()
    os.environ["PYTHONPATH"] = str(cfg.ROOT)  # for the sandbox's own commands, whatever the cwd
    os.environ.update(kernel_environment())  # DEVICE_POLICY; the sandbox passes CUDA_VISIBLE_DEVICES on
    course = prepare_course(task)
    config = nbgrader_config(course)
    config.Execute.timeout = config.ExecutePreprocessor.timeout = task.cell_timeout
    cgroup = None
    if task.sandbox_uid is not None:
        extra, cgroup = sandbox_setup(task, course)
        config.merge(Config(extra))
    else:
        os.environ.update(thread_env(task.threads))
    Path(config.Exchange.root).mkdir(parents=True, exist_ok=True)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    result: dict = {"student_id": task.student_id}
    try:
        outcome = api.autograde(cfg.ASSIGNMENT_ID, task.student_id, force=True, create=True)
        if not outcome.get("success"):
            result["error"] = "nbgrader autograde failed: " + last_line(outcome.get("error") or outcome.get("log"))
            print(outcome.get("log"), outcome.get("error"), sep="\n", file=sys.stderr)  # kept in <student>.log
        else:
            auto_ids, _ = graded_cells()
            notebook = autograded_path(course, "autograded", task.student_id) / f"{cfg.NOTEBOOK_NAME}.ipynb"
            notes = notes_of(notebook)
            present = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nbformat.read(notebook, as_version=4).cells}
            for missing in sorted(set(auto_ids) - present):
                notes.setdefault(missing, []).append("this test cell is missing from the submission (deleted?): 0 points")
            result.update(cells=read_scores(api, task.student_id, auto_ids), failed=failed_cells(notebook), notes=notes)
            feedback = api.generate_feedback(cfg.ASSIGNMENT_ID, task.student_id, force=True)
            html = autograded_path(course, "feedback", task.student_id) / f"{cfg.NOTEBOOK_NAME}.html"
            if feedback.get("success") and html.is_file():
                result["feedback_html"] = str(html)
    finally:
        if task.sandbox_uid is not None:
            sandbox.kill_user(task.sandbox_uid)
        if cgroup:
            sandbox.remove_cgroup(cgroup)
    result["seconds"] = time.perf_counter() - start
    write_json(Path(task.result), result)
    return result


def last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


def write_json(path: Path, data: dict) -> None:
    """Atomic write: a reader (or a crash) never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def write_task(path: Path, task: Task) -> Path:
    write_json(path, asdict(task))
    return path


CLONE_NEWNET = 0x40000000  # from <sched.h>


def isolate_network() -> None:
    """Move this process into a new network namespace with only loopback up (Linux, root).

    Python 3.11 has no ``os.unshare``, hence libc through ctypes.
    """
    import ctypes
    import subprocess

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)


def child_main(task_path: str, log_path: str, isolate: bool) -> None:
    """Entry point of a worker forked by ``grade.py``: own session, own log, own network."""
    os.setsid()  # the grader kills the whole group on a timeout, kernel included
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    if isolate:
        isolate_network()
    run(Task(**json.loads(Path(task_path).read_text())))



if __name__ == "__main__":
    run(Task(**json.loads(Path(sys.argv[1]).read_text())))
