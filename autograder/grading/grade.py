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
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import course_config as cfg
from autograder.grading import canary as canaries
from autograder.grading.canary import CANARY_ID, Canary, CanaryFailed
from autograder.grading.dispatch import run_worker, worker_context
from autograder.grading.machine import grading_device, sandbox_mode
from autograder.grading.results import (GradeRow, Task, WorkerResult, auto_max, fault_row, fault_summary,
                                        grader_fingerprint, graded_cells, row_from_result, write_grades, write_task,
                                        zero_row)
from autograder.grading.slots import Slot, SlotPool
from autograder.grading.store import ResultStore, sha256
from autograder.grading.submissions import REPAIRED, Submission, find_submissions

if TYPE_CHECKING:
    from autograder.grading.warm import Zygote

__all__ = ["Canary", "CanaryFailed", "GradeRow", "Grader", "auto_max", "fault_row", "fault_summary", "grade",
           "graded_cells", "grading_device", "sandbox_mode", "worker_context", "write_grades", "zero_row"]

log = logging.getLogger(__name__)


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

    def run_canary(self) -> Canary:
        """Grade the reference solution here; raise ``CanaryFailed`` (saying why) unless it gets full marks."""
        folder = self.root / "canary"
        folder.mkdir(exist_ok=True)
        submission = Submission(CANARY_ID, cfg.REFERENCE_SUBMISSION)
        with self.pool.acquire(canary=True) as slot:
            result = self._run_worker(submission, slot, folder)
        row = self.row_from_result(result)
        failure = canaries.failure_message(row, self.auto_ids, isolation=self.isolation, device=self.device,
                                           log=str(folder / (CANARY_ID + '.log')))
        if failure:
            raise CanaryFailed(failure)
        self.canary = Canary(row, result.cell_seconds)  # each graded cell, its judging included
        self.cell_timeouts = self.canary.cell_timeouts()
        self.submission_timeout = self.canary.submission_timeout()
        return self.canary

    def cached(self, submission: Submission) -> tuple[GradeRow | None, bool]:
        """(the stored row of this submission by this grader, if any: ``ResultStore.stored``; whether it is stale)."""
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
        ``store.release_held`` puts them where graded ones go (or ``store.drop_held`` removes them), so
        nothing graded before the canary's verdict replaces what an earlier run kept.
        """
        start = time.perf_counter()
        if submission.fault:  # nobody's file: a row that says so, nothing stored
            row = self.row_from_result(WorkerResult(submission.student_id, grader_error=submission.fault))
            row.device = self.device
            return row
        folder = self.store.folder(held=held)
        if submission.problem:
            result = WorkerResult(submission.student_id, error=submission.problem)
        else:
            with self.pool.acquire() as slot:
                result = self._run_worker(submission, slot, folder)
        result.submission_sha256, result.grader = sha256(submission.path), self.fingerprint
        result.device, result.isolation = self.device, self.isolation
        result.seconds = time.perf_counter() - start
        self.store.save(folder, result)
        return self.row_from_result(result)

    def _run_worker(self, submission: Submission, slot: Slot, folder: Path) -> WorkerResult:
        """Grade ``submission`` in a worker process on ``slot``; its result."""
        from dataclasses import asdict

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
        failure = run_worker(task_path, log_path, result_path, sid, uid, limit)
        if failure is not None:
            return failure
        result = WorkerResult.read(result_path)
        result_path.unlink()
        self.store.keep_outputs(sid, course, result, folder)
        return result

    def row_from_result(self, result: WorkerResult) -> GradeRow:
        return row_from_result(result, self.auto_ids, self.manual_ids, self.isolation)


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
                grader.store.drop_held()  # nothing of theirs is kept: graded again on the next run
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
                        grader.store.release_held(submission.student_id)
                        keep(submission, row)
                grader.store.drop_held()
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
