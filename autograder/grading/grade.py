"""Autograde a folder of submissions with nbgrader and write grades and feedback.

Each submission is graded by ``autograder/grading/worker.py`` in a process of its own, with a
sandboxed kernel when the machine allows it (``course_config.SANDBOX``, ``autograder/kernel/sandbox.py``)
and a wall-time limit per cell and per submission. Before the first student, the canary grades
the reference solution in the same sandbox and device: unless it earns full marks, nothing is
graded. A broken submission becomes a row graded 0 with its reason; a failure of the grader or
the machine becomes ``error: grader: <reason>`` with no score, is not cached, and makes the
command exit non-zero. Results are kept per student under ``OUT/.course/results``, so
re-running on the same folder grades only what changed, never finished or failed (a killed run
resumes), and ``grades.csv`` is replaced atomically after each submission.

    python -m autograder grade SUBMISSIONS --out DIR [--workers N] [--shard i/N]
"""
from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import course_config as cfg
from autograder.errors import InputError, SetupError
from autograder.files import atomic_write
from autograder.grading import canary as canaries
from autograder.grading.canary import CANARY_ID, Canary, CanaryFailed
from autograder.grading.results import (GRADER_ERROR, GradeRow, Task, auto_max, fault_row, grader_fingerprint,
                                        graded_cells, write_task, zero_row)
from autograder.grading.slots import Slot, SlotPool
from autograder.grading.store import ResultStore, sha256
from autograder.grading.submissions import REPAIRED, Submission, find_submissions

if TYPE_CHECKING:
    from autograder.grading.warm import Zygote

__all__ = ["Canary", "CanaryFailed", "GradeRow", "Grader", "auto_max", "fault_row", "grade", "graded_cells", "write_grades",
           "zero_row"]

log = logging.getLogger(__name__)


def grading_device() -> str:
    """What the kernels will run on, from the device policy and the visible GPUs (an empty
    ``CUDA_VISIBLE_DEVICES``, which kernels inherit, hides them all)."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1")
    if cfg.DEVICE_POLICY == "cpu" or hidden or shutil.which("nvidia-smi") is None:
        return "cpu"
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    gpus = [line.split(" (UUID")[0] for line in listing.stdout.splitlines() if line.startswith("GPU ")]
    return f"cuda ({gpus[0]})" if gpus else "cpu"


def sandbox_mode() -> tuple[bool, str]:
    """(sandbox on?, isolation label) from ``course_config.SANDBOX`` and what this machine permits.

    The label goes into every row's ``isolation`` column: ``sandbox``, or ``NONE: <why>``.
    """
    from autograder.kernel import sandbox

    if cfg.SANDBOX not in ("auto", "require", "off"):
        raise InputError(f"course_config.SANDBOX must be 'auto', 'require' or 'off', not {cfg.SANDBOX!r}")
    if cfg.SANDBOX == "off":
        return False, "NONE: sandbox off in course_config.SANDBOX"
    reason = sandbox.available()
    if reason is None:
        return True, "sandbox"
    if cfg.SANDBOX == "require":
        raise SetupError(f"course_config.SANDBOX is 'require' but {reason}; no submission was graded")
    return False, f"NONE: {reason}"


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
        _CONTEXT.set_forkserver_preload(["autograder.grading.worker", "nbgrader.apps", "autograder.grading.execute", "torch",
                                         "torch._dynamo"])
        forkserver.ensure_running()  # its imports overlap with the grader's own set-up
    return _CONTEXT


class Grader:
    """Grades submissions one at a time into ``out``; thread-safe for parallel slots.

    ``run_canary()`` first: it grades the reference in the very sandbox and device the batch
    uses, refuses to go on unless it earns full marks, and scales the time limits to this
    machine.
    """

    def __init__(self, out: Path, *, workers: int = 1, cell_timeout: int = cfg.CELL_TIMEOUT_S, warm: bool = False,
                 spare: bool = False):
        """``spare``: one more slot, the canary's own, so that it grades beside all ``workers``."""
        self.out = Path(out).resolve()
        self.store = ResultStore(self.out)
        self.store.prepare()
        self.root, self.results, self.held = self.store.root, self.store.results, self.store.held
        worker_context()  # start the fork server first: it imports while the template is built
        self.sandboxed, self.isolation = sandbox_mode()
        self.threads = max(1, min(cfg.KERNEL_THREADS, (os.cpu_count() or 1) // max(1, workers)))
        self.pool = SlotPool(workers, spare=spare, sandboxed=self.sandboxed, make_zygote=self._zygote)
        self.canary_slot = self.pool.canary_slot
        if warm:  # the zygotes import while the template, the gradebook and the cache are prepared
            self.pool.launch_zygotes()
        from autograder.grading.course import generate_assignment, make_course  # nbgrader: imported while the zygotes start

        template = self.root / "template"
        self.template = template
        try:
            generate_assignment(make_course(template))  # source and the gradebook every worker copies
            self.fingerprint = grader_fingerprint()
            from autograder.grading.gradebook import ClassGradebook

            self.gradebook = ClassGradebook(self.out, template, self.fingerprint)
            self.gradebook.prepare()
        except BaseException:
            self.close()  # no zygote outlives a grader that could not start
            raise
        self.auto_ids, self.manual_ids = graded_cells()
        self.cell_timeout = cell_timeout
        self.cell_timeouts: dict[str, float] = {}
        self.submission_timeout = float(cfg.SUBMISSION_TIMEOUT_S)
        self.canary: Canary | None = None
        self.device = grading_device()

    def start_zygotes(self) -> None:
        """Warm kernels (``course_config.WARM_KERNELS``): a zygote per slot, all importing at once.

        A zygote that does not start leaves its slot on cold kernels, with a warning: slower, not wrong.
        """
        self.pool.start_zygotes()

    @property
    def zygotes(self) -> list[Zygote]:
        """The slots' zygotes that are running (none: every kernel starts cold)."""
        return self.pool.zygotes

    def _zygote(self, index: int, uid: int | None) -> Zygote:
        """A (not yet started) zygote for slot ``index``; its log stays in ``.course/zygote-<index>.log``."""
        from autograder.grading.warm import Zygote

        # the notebook's data and figures, which the release ships too (bound read-only for kernels)
        return Zygote(uid, cfg.SOURCE_DIR / cfg.ASSIGNMENT_ID, self.threads, self.root / f"zygote-{index}.log")

    def close(self) -> None:
        """Stop the zygotes and release the kernel users' locks (nothing else outlives a run)."""
        self.pool.close()

    def slot(self, *, canary: bool = False):
        """A free worker slot for one submission (``SlotPool.acquire``)."""
        return self.pool.acquire(canary=canary)

    def run_canary(self) -> Canary:
        """Grade the reference solution here; raise ``CanaryFailed`` (saying why) unless it gets full marks."""
        folder = self.root / "canary"
        folder.mkdir(exist_ok=True)
        submission = Submission(CANARY_ID, cfg.REFERENCE_SUBMISSION)
        with self.slot(canary=True) as slot:
            result = self._run_worker(submission, slot, folder)
        row = self.row_from_result(result)
        failure = canaries.failure_message(row, self.auto_ids, isolation=self.isolation, device=self.device,
                                           log=str(folder / (CANARY_ID + '.log')))
        if failure:
            raise CanaryFailed(failure)
        self.canary = Canary(row, result.get("cell_seconds") or {})  # each graded cell, its judging included
        self.cell_timeouts = self.canary.cell_timeouts()
        self.submission_timeout = self.canary.submission_timeout()
        return self.canary

    def cached(self, submission: Submission) -> tuple[GradeRow | None, bool]:
        """(the stored result of this exact submission by this exact grader, if any and not a grader
        fault; whether the stored result is of this notebook by another version of the tests or points)."""
        stored, stale = self.store.stored(submission, self.fingerprint)
        return (self.row_from_result(stored) if stored is not None else None), stale

    def record(self, submission: Submission, row: GradeRow) -> None:
        """Put a student's row into the class gradebook (``autograder/grading/gradebook.py``); a file whose owner is
        unknown (``Submission.fault``) is nobody's, and stays out of it."""
        from autograder.grading.gradebook import stored_records

        if submission.fault:
            return
        graded = row.status == "graded"
        self.gradebook.record(row, submission.path, submission.submitted_at,
                              self.root / "autograded" / f"{submission.student_id}.ipynb" if graded else None,
                              stored_records(self.results, submission.student_id) if graded else None,
                              origin=submission.origin)

    def grade(self, submission: Submission, *, held: bool = False) -> GradeRow:
        """Grade one submission; never raises for a problem of the submission itself.

        ``held``: its result, log, feedback and autograded notebook stay in ``self.held`` until
        ``release_held`` puts them where graded ones go (or ``drop_held`` removes them), so that
        nothing graded before the canary's verdict replaces what an earlier run kept.
        """
        start = time.perf_counter()
        if submission.fault:  # nobody's file: a row that says so, nothing stored
            row = self.row_from_result({"student_id": submission.student_id, "grader_error": submission.fault})
            row.device = self.device
            return row
        folder = self.store.folder(held=held)
        if submission.problem:
            result = {"student_id": submission.student_id, "error": submission.problem}
        else:
            with self.slot() as slot:
                result = self._run_worker(submission, slot, folder)
        result.update(submission_sha256=sha256(submission.path), grader=self.fingerprint, device=self.device,
                      isolation=self.isolation)
        result["seconds"] = time.perf_counter() - start
        self.store.save(folder, result)
        return self.row_from_result(result)

    def release_held(self, student_id: str) -> None:
        self.store.release_held(student_id)

    def drop_held(self) -> None:
        self.store.drop_held()

    def _run_worker(self, submission: Submission, slot: Slot, folder: Path) -> dict:
        from dataclasses import asdict

        from autograder.kernel import sandbox
        from autograder.grading.worker import child_main, worker_cgroup

        uid = slot.uid
        sid = submission.student_id
        course = self.root / "students" / sid
        result_path = folder / f"{sid}.worker.json"
        result_path.unlink(missing_ok=True)
        task = Task(sid, str(Path(submission.path).resolve()), str(course), str(self.template), str(result_path),
                    self.cell_timeouts, float(self.cell_timeout), uid, self.threads,
                    asdict(slot.zygote.info) if slot.zygote is not None and slot.zygote.info else None)
        task_path = write_task(folder / f"{sid}.task.json", task)
        log_path = folder / f"{sid}.log"  # nbgrader's log, for the instructor
        limit = 2 * self.submission_timeout  # a submission with a timed-out cell is graded twice
        start = time.perf_counter()
        process, out_of_memory = None, False
        try:
            process = worker_context().Process(target=child_main, args=(str(task_path), str(log_path)))
            process.start()
            process.join(limit)
            if process.is_alive():
                os.killpg(process.pid, signal.SIGKILL)
                process.join()
                return {"student_id": sid, "error": f"grading took longer than {limit:.0f} s and was stopped"}
        except OSError as error:  # the machine (no memory or processes left for a worker)
            return {"student_id": sid, "grader_error": f"could not start a grading worker: {error}"}
        finally:
            if uid is not None:
                sandbox.kill_user(uid)
            if process is not None and process.pid is not None:
                out_of_memory = sandbox.oom_killed(worker_cgroup(process.pid))
                sandbox.remove_cgroup(worker_cgroup(process.pid))
            task_path.unlink(missing_ok=True)
        if not result_path.is_file():
            log.warning("worker for %s failed (exit %s); its log: %s", sid, process.exitcode, log_path)
            why = f"ran out of its {cfg.WORKER_MEMORY_MB} MB (course_config.WORKER_MEMORY_MB)" if out_of_memory \
                else f"crashed (exit {process.exitcode})"
            return {"student_id": sid, "grader_error": f"the grading worker {why} after "
                                                       f"{time.perf_counter() - start:.0f} s; see {log_path}"}
        result = json.loads(result_path.read_text())
        result_path.unlink()
        self.store.keep_outputs(sid, course, result, folder)
        return result

    def row_from_result(self, result: dict) -> GradeRow:
        sid = result["student_id"]
        if "grader_error" in result:
            row = fault_row(sid, result["grader_error"], self.auto_ids, self.manual_ids)
        elif "error" in result:
            row = zero_row(sid, result["error"], self.auto_ids, self.manual_ids)
        else:
            cells: dict[str, float | None] = {gid: float(result["cells"].get(gid, 0.0)) for gid in self.auto_ids}
            cells.update({gid: None for gid in self.manual_ids})
            row = GradeRow(sid, sum(cells[g] or 0.0 for g in self.auto_ids), auto_max(self.auto_ids), cells, "graded",
                           result.get("failed", {}), result.get("notes", {}))
            feedback = result.get("feedback")
            row.feedback = Path(feedback) if feedback else None
        row.seconds, row.device = result.get("seconds", 0.0), result.get("device", "")
        row.isolation = result.get("isolation", self.isolation)
        return row


def csv_header(auto_ids: list[str], manual_ids: list[str]) -> list[str]:
    return ["student_id", "autograded_score", "autograded_max", *auto_ids, *manual_ids, "status", "device", "isolation"]


def write_grades(rows: list[GradeRow], path: Path, auto_ids: list[str], manual_ids: list[str]) -> None:
    """Write ``grades.csv`` atomically: a reader sees the old file or the new one, never half.

    A row the grader failed on has empty score cells: no number stands where none was earned.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(csv_header(auto_ids, manual_ids))
    for row in sorted(rows, key=lambda r: r.student_id):
        values = ["" if row.cells.get(g) is None else f"{row.cells[g]:g}" for g in auto_ids + manual_ids]
        score = "" if row.score is None else f"{row.score:g}"
        writer.writerow([row.student_id, score, f"{row.max_score:g}", *values, row.status, row.device, row.isolation])
    atomic_write(path, buffer.getvalue())


def fault_summary(rows: list[GradeRow]) -> str | None:
    """One line naming how many submissions the grader failed on and why; None when there are none."""
    faults = Counter(row.status.removeprefix(GRADER_ERROR) for row in rows if row.grader_fault)
    if not faults:
        return None
    reasons = "; ".join(f"{reason} ({count}x)" for reason, count in faults.most_common())
    return (f"{sum(faults.values())} submission(s) could not be graded because of the grader or the machine, "
            f"not the students (empty scores, graded again on the next run): {reasons}")


def grade(submissions_folder: Path, out: Path, *, workers: int = 1, shard: tuple[int, int] | None = None,
          cell_timeout: int = cfg.CELL_TIMEOUT_S, progress: bool = False, canary: bool = True,
          warm: bool | None = None, remove_missing: bool = False) -> list[GradeRow]:
    """Grade every submission in ``submissions_folder`` (or one shard of them) into ``out``.

    Returns one row per submission; writes ``out/grades.csv`` after each one and
    ``out/feedback/<student>.html``. Submissions graded before by the same grader are reused.
    Before the first one, the canary grades the reference; if it falls short, no submission is
    graded and each gets a grader-fault row saying so (no score). ``warm``: kernels forked from a
    pre-imported zygote per worker (default ``course_config.WARM_KERNELS``). Students that ``out``
    holds from an earlier run but this run's input lacks are named in a warning, and removed from
    ``out`` with ``remove_missing`` (``missing_students``).
    """
    out = Path(out)
    source = Path(submissions_folder)
    if source.is_file() and source.suffix == ".zip":
        from autograder.grading.submissions import extract_zip

        submissions_folder = extract_zip(source, out / ".course" / "unzipped")
    submissions = find_submissions(submissions_folder, repaired_dir=out / REPAIRED)
    if shard is not None:
        from autograder.grading.shards import select_shard

        submissions = select_shard(submissions, *shard)
    out.mkdir(parents=True, exist_ok=True)
    missing_students(out, submissions, remove=remove_missing)
    warm = cfg.WARM_KERNELS if warm is None else warm
    # a core no worker uses grades the canary beside them, instead of before them
    spare = canaries.has_own_slot(canary, workers, os.cpu_count())
    grader = Grader(out, workers=workers, cell_timeout=cell_timeout, warm=warm, spare=spare)
    try:
        rows = grade_with(grader, submissions, canary=canary, progress=progress, workers=workers, warm=warm)
    finally:
        grader.close()
    write_similarity(out)
    return [rows[s.student_id] for s in submissions]


def missing_students(out: Path, submissions: list[Submission], *, remove: bool) -> list[str]:
    """The students that the class course in ``out`` holds but ``submissions`` lacks (an earlier run's
    input: another zip, a file since renamed), named in a warning; with ``remove``, removed from ``out``."""
    from autograder.grading.gradebook import class_students, remove_students

    missing = sorted(class_students(out) - {s.student_id for s in submissions if not s.fault})
    if missing and remove:
        remove_students(out, missing)
        log.warning("removed %d student(s) that this run's input does not hold from %s: %s", len(missing), out,
                    ", ".join(missing))
    elif missing:
        log.warning("%s holds %d student(s) that this run's input does not hold: %s. They stay in its gradebook, "
                    "feedback and export; remove them with `grade ... --remove-missing`, or grade into a new folder",
                    out, len(missing), ", ".join(missing))
    return missing


def grade_with(grader: Grader, submissions: list[Submission], *, canary: bool, progress: bool, workers: int,
               warm: bool) -> dict[str, GradeRow]:
    """Every submission's row: the stored ones reused, the stale ones named, the rest graded."""
    out = grader.out
    if not grader.sandboxed:
        log.warning("kernels are NOT sandboxed: %s", grader.isolation.removeprefix("NONE: "))
    rows: dict[str, GradeRow] = {}
    todo = []
    stale = []
    for submission in submissions:
        cached, outdated = grader.cached(submission)
        if cached is not None:
            rows[submission.student_id] = cached
            grader.record(submission, cached)
        else:
            todo.append(submission)
            if outdated:
                stale.append(submission.student_id)
    if rows:
        log.info("%d submission(s) already graded by this grader: kept", len(rows))
    if progress and rows:
        print(f"{len(rows)} up to date" + (f", {len(todo)} to grade" if todo else ""), file=sys.stderr, flush=True)
    if stale:  # the tests or points changed since: their scores are regraded, manual grades kept
        log.warning("%d stored result(s) are stale (graded by other tests, points or grader version): %s; "
                    "grading them again, keeping their manual grades", len(stale), ", ".join(stale))
    write_grades(list(rows.values()), out / "grades.csv", grader.auto_ids, grader.manual_ids)
    grade_todo(grader, todo, rows, canary=canary, progress=progress, workers=workers, warm=warm)
    return rows


def grade_todo(grader: Grader, todo: list[Submission], rows: dict[str, GradeRow], *, canary: bool, progress: bool,
               workers: int, warm: bool) -> None:
    """The zygotes, the canary, then every submission of ``todo`` (into ``rows`` and grades.csv as each finishes).

    The canary grades on a slot of its own when the grader has one (a core no worker uses), else on
    one of the workers' slots; the first submissions grade on the other slots at the same time.
    Their rows wait for its verdict: dropped (a grader fault for everyone, as when it runs alone)
    if it fails, graded again if it set longer time limits than they ran under and they lost points.
    """
    out = grader.out
    gradable = any(not s.problem and not s.fault for s in todo)
    if warm and gradable:
        grader.start_zygotes()
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="grading", unit="submission", file=sys.stderr)

    def keep(submission: Submission, row: GradeRow) -> None:
        rows[row.student_id] = row
        grader.record(submission, row)
        write_grades(list(rows.values()), out / "grades.csv", grader.auto_ids, grader.manual_ids)
        if bar is not None:
            bar.update()

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            concurrent.futures.ThreadPoolExecutor(max_workers=1) as canary_thread:
        if canary and gradable:
            limits = (grader.cell_timeout, grader.submission_timeout)
            verdict = canary_thread.submit(grader.run_canary)  # on a slot of its own, or on a worker's
            beside = canaries.beside(todo, workers, grader.canary_slot is not None)
            early = [pool.submit(grader.grade, s, held=True) for s in beside]
            try:
                verdict.result()
            except CanaryFailed as failure:  # no student is graded on a machine that fails the reference
                concurrent.futures.wait(early)
                grader.drop_held()  # nothing of theirs is kept: graded again on the next run
                log.error("%s", failure)
                for submission in todo:
                    rows[submission.student_id] = fault_row(submission.student_id, f"not graded, the canary failed: {failure}",
                                                            grader.auto_ids, grader.manual_ids)
                    rows[submission.student_id].isolation = grader.isolation
                    grader.record(submission, rows[submission.student_id])
                todo = []
                write_grades(list(rows.values()), out / "grades.csv", grader.auto_ids, grader.manual_ids)
            else:
                longer = canaries.limits_grew(limits, grader.cell_timeouts, grader.submission_timeout)
                again = []
                for submission, future in zip(beside, early):
                    row = future.result()
                    if canaries.grade_again(row, longer):
                        again.append(submission)
                    else:
                        grader.release_held(submission.student_id)
                        keep(submission, row)
                grader.drop_held()
                todo = again + todo[len(beside):]
        for submission, row in zip(todo, pool.map(grader.grade, todo)):
            keep(submission, row)
    if bar is not None:
        bar.close()


def write_similarity(out: Path) -> Path:
    """``out/similarity.html`` over every notebook in the class course's ``submitted/`` (all shards' after a merge)."""
    from autograder.grading.gradebook import course_path
    from autograder.grading.similarity import similarity_report, write_similarity_html

    submitted = sorted(p.name for p in (Path(out) / "submitted").iterdir()) if (Path(out) / "submitted").is_dir() else []
    notebooks = [(sid, course_path(Path(out), "submitted", sid) / f"{cfg.NOTEBOOK_NAME}.ipynb") for sid in submitted]
    return write_similarity_html(similarity_report(notebooks), Path(out) / "similarity.html")


def merge_gradebooks(shard_dirs: list[Path], dest: Path) -> Path:
    """One class gradebook (and course folders) in ``dest`` from the shards' own; return its path."""
    from autograder.grading import gradebook
    from autograder.grading.course import generate_assignment, make_course

    template = Path(dest).resolve() / ".course" / "template"
    generate_assignment(make_course(template))
    book = gradebook.merge_gradebooks([Path(d) for d in shard_dirs], Path(dest), template, grader_fingerprint())
    write_similarity(book.root)
    return book.root / gradebook.GRADEBOOK
