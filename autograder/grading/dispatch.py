"""The grader's worker processes: forked from a fork server that has imported nbgrader, one per submission.

``run_worker`` starts one on a task file, waits at most its time limit, and afterwards kills every process
of the kernel's user and removes the worker's cgroup, whatever happened. Only the grader's side lives
here; the worker's own code is ``worker.py``.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import course_config as cfg
from autograder.grading.results import WorkerResult

log = logging.getLogger(__name__)
_CONTEXT = None


def worker_context():
    """A fork server with nbgrader imported: workers start in milliseconds, not seconds.

    Forking the grader itself is unsafe (it runs threads); the fork server is a clean,
    single-threaded process that only imports.
    """
    global _CONTEXT
    if _CONTEXT is None:
        import multiprocessing

        from multiprocessing import forkserver

        _CONTEXT = multiprocessing.get_context("forkserver")
        # torch too, with torch._dynamo, which its optimizers import on their first step (1.1 s): the
        # judge compares tensors and computes reference trajectories in the worker
        _CONTEXT.set_forkserver_preload(["autograder.grading.worker", "nbgrader.apps", "autograder.grading.execute",
                                         "torch", "torch._dynamo"])
        forkserver.ensure_running()  # its imports overlap with the grader's own set-up
    return _CONTEXT


def run_worker(task_path: Path, log_path: Path, result_path: Path, sid: str, uid: int | None,
               limit: float) -> WorkerResult | None:
    """Run the worker of ``task_path`` for at most ``limit`` seconds; None when it wrote ``result_path``,
    else the result that says why not (``error``: too slow; ``grader_error``: the machine or a crash)."""
    from autograder.grading.worker import child_main, worker_cgroup
    from autograder.kernel import processes, sandbox

    start = time.perf_counter()
    process, out_of_memory = None, False
    try:
        process = worker_context().Process(target=child_main, args=(str(task_path), str(log_path)))
        process.start()
        process.join(limit)
        if process.is_alive():
            os.killpg(process.pid, signal.SIGKILL)
            process.join()
            return WorkerResult(sid, error=f"grading took longer than {limit:.0f} s and was stopped")
    except OSError as error:  # the machine (no memory or processes left for a worker)
        return WorkerResult(sid, grader_error=f"could not start a grading worker: {error}")
    finally:
        if uid is not None:
            processes.kill_user(uid)
        if process is not None and process.pid is not None:
            out_of_memory = sandbox.oom_killed(worker_cgroup(process.pid))
            sandbox.remove_cgroup(worker_cgroup(process.pid))
        task_path.unlink(missing_ok=True)
    if not result_path.is_file():
        log.warning("worker for %s failed (exit %s); its log: %s", sid, process.exitcode, log_path)
        why = f"ran out of its {cfg.WORKER_MEMORY_MB} MB (course_config.WORKER_MEMORY_MB)" if out_of_memory \
            else f"crashed (exit {process.exitcode})"
        return WorkerResult(sid, grader_error=f"the grading worker {why} after "
                                              f"{time.perf_counter() - start:.0f} s; see {log_path}")
    return None
