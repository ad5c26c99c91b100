"""Autograde a folder of submissions with nbgrader and write grades and feedback.

Each submission is graded by ``autograder/worker.py`` in a process of its own: inside a
network namespace with only loopback and with a sandboxed kernel when the machine allows it
(``course_config.SANDBOX``), with a wall-time limit per cell and per submission. A broken
submission becomes a row graded 0 with its reason; the others go on. Results are kept per
student under ``OUT/.course/results``, so re-running on the same folder grades only what
changed or never finished (a killed run resumes), and ``grades.csv`` is replaced atomically
after each submission.

    python -m autograder grade SUBMISSIONS --out DIR [--workers N] [--shard i/N]
"""
from __future__ import annotations

import concurrent.futures
import csv
import hashlib
import io
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

import course_config as cfg
from autograder.execute import NOTE_PREFIX
from autograder.notebook_code import is_test_cell
from autograder.submissions import Submission, find_submissions

log = logging.getLogger(__name__)


def graded_cells(source_notebook: Path = cfg.SOURCE_NOTEBOOK) -> tuple[list[str], list[str]]:
    """(autograded test cell ids, manually graded cell ids), in notebook order."""
    nb = nbformat.read(source_notebook, as_version=4)
    auto, manual = [], []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            (auto if is_test_cell(cell) else manual).append(meta["grade_id"])
    return auto, manual


@dataclass
class GradeRow:
    student_id: str
    score: float
    max_score: float
    cells: dict[str, float | None]  # grade id -> autograded score (None: graded by hand)
    status: str  # "graded", or "error: <reason>"
    failed: dict[str, str] = field(default_factory=dict)  # test cell id -> error message
    notes: dict[str, list[str]] = field(default_factory=dict)  # cell id -> grader notes (tampering, limits)
    seconds: float = 0.0
    device: str = ""
    feedback: Path | None = None


def auto_max(auto_ids: list[str]) -> float:
    return float(sum(cfg.POINTS[gid] for gid in auto_ids))


def zero_row(student_id: str, reason: str, auto_ids: list[str], manual_ids: list[str]) -> GradeRow:
    """The row of a submission that could not be graded."""
    cells: dict[str, float | None] = {gid: 0.0 for gid in auto_ids}
    cells.update({gid: None for gid in manual_ids})
    return GradeRow(student_id, 0.0, auto_max(auto_ids), cells, f"error: {reason}")


def failed_cells(autograded_notebook: Path) -> dict[str, str]:
    """Test cells that raised, with the message their assertion carried."""
    failed = {}
    for cell in nbformat.read(autograded_notebook, as_version=4).cells:
        if is_test_cell(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    failed[cell.metadata["nbgrader"]["grade_id"]] = f"{output.get('ename')}: {output.get('evalue')}"
    return failed


def notes_of(autograded_notebook: Path) -> dict[str, list[str]]:
    """The grader's own notes per cell (repairs before a test, time limits, cells not run)."""
    notes: dict[str, list[str]] = {}
    for index, cell in enumerate(nbformat.read(autograded_notebook, as_version=4).cells):
        key = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}"
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            found = [line[len(NOTE_PREFIX):] for line in text.splitlines() if line.startswith(NOTE_PREFIX)]
            if output.get("output_type") == "error" and output.get("ename") == "CellNotRun":
                found.append(output.get("evalue", ""))
            if found:
                notes.setdefault(key, []).extend(found)
    return notes


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def grader_fingerprint() -> str:
    """Changes whenever the tests or the points change: results of another version are stale."""
    digest = hashlib.sha256(cfg.SOURCE_NOTEBOOK.read_bytes())
    digest.update(json.dumps(cfg.POINTS, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def grading_device() -> str:
    """What the kernels will run on, from the device policy and the visible GPUs."""
    if cfg.DEVICE_POLICY == "cpu" or shutil.which("nvidia-smi") is None:
        return "cpu"
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    gpus = [line.split(" (UUID")[0] for line in listing.stdout.splitlines() if line.startswith("GPU ")]
    return f"cuda ({gpus[0]})" if gpus else "cpu"


def sandbox_mode() -> tuple[bool, str]:
    """(sandbox on?, why) from ``course_config.SANDBOX`` and what this machine permits."""
    from autograder import sandbox

    if cfg.SANDBOX == "off":
        return False, "sandbox off (course_config.SANDBOX)"
    reason = sandbox.available()
    if reason is None:
        return True, "sandboxed: own user, no network, hidden files, memory and process limits"
    if cfg.SANDBOX == "require":
        raise RuntimeError(f"course_config.SANDBOX is 'require' but {reason}")
    return False, f"NOT sandboxed: {reason}"


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
        _CONTEXT.set_forkserver_preload(["autograder.worker", "nbgrader.apps", "autograder.execute"])
        forkserver.ensure_running()  # its imports overlap with the grader's own set-up
    return _CONTEXT


class Grader:
    """Grades submissions one at a time into ``out``; thread-safe for parallel slots."""

    def __init__(self, out: Path, *, workers: int = 1, cell_timeout: int = cfg.CELL_TIMEOUT_S,
                 hide: list[Path] | None = None):
        from autograder.course import generate_assignment, make_course

        self.out = Path(out).resolve()
        self.root = self.out / ".course"
        self.results = self.root / "results"
        self.results.mkdir(parents=True, exist_ok=True)
        (self.out / "feedback").mkdir(exist_ok=True)
        worker_context()  # start the fork server first: it imports while the template is built
        template = self.root / "template"
        self.template = template
        generate_assignment(make_course(template))  # source and the gradebook every worker copies
        self.auto_ids, self.manual_ids = graded_cells()
        self.cell_timeout = cell_timeout
        self.sandboxed, self.isolation = sandbox_mode()
        self.device = grading_device()
        self.threads = max(1, (os.cpu_count() or 1) // max(1, workers))
        self.fingerprint = grader_fingerprint()
        self.hide = sorted({str(p) for p in [cfg.ROOT, self.out, *(hide or [])]} | {"/root", "/home", "/tmp"})
        self.slots: queue.Queue[int | None] = queue.Queue()
        self._uid_locks = []
        if self.sandboxed:
            from autograder import sandbox

            self._uid_locks = sandbox.reserve_uids(max(1, workers), cfg.SANDBOX_UID_BASE)
            uids = [uid for uid, _ in self._uid_locks]
        else:
            uids = [None] * max(1, workers)
        for uid in uids:
            self.slots.put(uid)

    def cached(self, submission: Submission) -> GradeRow | None:
        """The stored result of this exact submission by this exact grader, if any."""
        path = self.results / f"{submission.student_id}.json"
        if not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
        if stored.get("submission_sha256") != sha256(submission.path) or stored.get("grader") != self.fingerprint:
            return None
        return self.row_from_result(stored)

    def grade(self, submission: Submission) -> GradeRow:
        """Grade one submission; never raises for a problem of the submission itself."""
        start = time.perf_counter()
        if submission.problem:
            result = {"student_id": submission.student_id, "error": submission.problem}
        else:
            uid = self.slots.get()
            try:
                result = self._run_worker(submission, uid)
            finally:
                self.slots.put(uid)
        result.update(submission_sha256=sha256(submission.path), grader=self.fingerprint, device=self.device)
        result["seconds"] = time.perf_counter() - start
        from autograder.worker import write_json

        write_json(self.results / f"{submission.student_id}.json", result)
        return self.row_from_result(result)

    def _run_worker(self, submission: Submission, uid: int | None) -> dict:
        from autograder import sandbox
        from autograder.worker import Task, child_main, write_task

        sid = submission.student_id
        course = self.root / "students" / sid
        result_path = self.results / f"{sid}.worker.json"
        result_path.unlink(missing_ok=True)
        task = Task(sid, str(Path(submission.path).resolve()), str(course), str(self.template), str(result_path),
                    self.cell_timeout, uid, self.hide, self.threads)
        task_path = write_task(self.results / f"{sid}.task.json", task)
        log_path = self.results / f"{sid}.log"  # nbgrader's log, for the instructor
        process = worker_context().Process(target=child_main, args=(str(task_path), str(log_path), self.sandboxed))
        process.start()
        try:
            process.join(cfg.SUBMISSION_TIMEOUT_S)
            if process.is_alive():
                os.killpg(process.pid, signal.SIGKILL)
                process.join()
                return {"student_id": sid, "error": f"grading took longer than {cfg.SUBMISSION_TIMEOUT_S} s and was stopped"}
        finally:
            if uid is not None:
                sandbox.kill_user(uid)
            task_path.unlink(missing_ok=True)
        if not result_path.is_file():
            log.warning("worker for %s failed (exit %s); its log: %s", sid, process.exitcode, log_path)
            return {"student_id": sid, "error": f"the grader's worker crashed (exit {process.exitcode})"}
        result = json.loads(result_path.read_text())
        result_path.unlink()
        self._keep_outputs(sid, course, result)
        return result

    def _keep_outputs(self, sid: str, course: Path, result: dict) -> None:
        """Move feedback and the autograded notebook out of the worker's folder; drop the rest."""
        html = result.pop("feedback_html", None)
        if html:
            shutil.copyfile(html, self.out / "feedback" / f"{sid}.html")
            result["feedback"] = str(self.out / "feedback" / f"{sid}.html")
        notebook = course / "autograded" / sid / cfg.ASSIGNMENT_ID / f"{cfg.NOTEBOOK_NAME}.ipynb"
        if notebook.is_file():
            (self.root / "autograded").mkdir(exist_ok=True)
            shutil.copyfile(notebook, self.root / "autograded" / f"{sid}.ipynb")
        shutil.rmtree(course, ignore_errors=True)

    def row_from_result(self, result: dict) -> GradeRow:
        sid = result["student_id"]
        if "error" in result:
            row = zero_row(sid, result["error"], self.auto_ids, self.manual_ids)
        else:
            cells: dict[str, float | None] = {gid: float(result["cells"].get(gid, 0.0)) for gid in self.auto_ids}
            cells.update({gid: None for gid in self.manual_ids})
            row = GradeRow(sid, sum(cells[g] or 0.0 for g in self.auto_ids), auto_max(self.auto_ids), cells, "graded",
                           result.get("failed", {}), result.get("notes", {}))
            feedback = result.get("feedback")
            row.feedback = Path(feedback) if feedback else None
        row.seconds, row.device = result.get("seconds", 0.0), result.get("device", "")
        return row


def csv_header(auto_ids: list[str], manual_ids: list[str]) -> list[str]:
    return ["student_id", "autograded_score", "autograded_max", *auto_ids, *manual_ids, "status", "device"]


def write_grades(rows: list[GradeRow], path: Path, auto_ids: list[str], manual_ids: list[str]) -> None:
    """Write ``grades.csv`` atomically: a reader sees the old file or the new one, never half."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(csv_header(auto_ids, manual_ids))
    for row in sorted(rows, key=lambda r: r.student_id):
        values = ["" if row.cells.get(g) is None else f"{row.cells[g]:g}" for g in auto_ids + manual_ids]
        writer.writerow([row.student_id, f"{row.score:g}", f"{row.max_score:g}", *values, row.status, row.device])
    tmp = path.with_suffix(".csv.tmp")
    tmp.write_text(buffer.getvalue())
    os.replace(tmp, path)


def grade(submissions_folder: Path, out: Path, *, workers: int = 1, shard: tuple[int, int] | None = None,
          cell_timeout: int = cfg.CELL_TIMEOUT_S, progress: bool = False) -> list[GradeRow]:
    """Grade every submission in ``submissions_folder`` (or one shard of them) into ``out``.

    Returns one row per submission; writes ``out/grades.csv`` after each one and
    ``out/feedback/<student>.html``. Submissions graded before by the same grader are reused.
    """
    out = Path(out)
    source = Path(submissions_folder)
    if source.is_file() and source.suffix == ".zip":
        from autograder.submissions import extract_zip

        submissions_folder = extract_zip(source, out / ".course" / "unzipped")
    submissions = find_submissions(submissions_folder)
    if shard is not None:
        from autograder.shards import select_shard

        submissions = select_shard(submissions, *shard)
    out.mkdir(parents=True, exist_ok=True)
    grader = Grader(out, workers=workers, cell_timeout=cell_timeout, hide=[source.resolve().parent if source.is_file()
                                                                          else source.resolve()])
    log.info("%s; kernels on %s", grader.isolation, grader.device)
    rows = {}
    todo = []
    for submission in submissions:
        cached = grader.cached(submission)
        if cached is not None:
            rows[submission.student_id] = cached
        else:
            todo.append(submission)
    if rows:
        log.info("%d submission(s) already graded by this grader: kept", len(rows))
    write_grades(list(rows.values()), out / "grades.csv", grader.auto_ids, grader.manual_ids)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="grading", unit="submission", file=sys.stderr)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for row in pool.map(grader.grade, todo):
            rows[row.student_id] = row
            write_grades(list(rows.values()), out / "grades.csv", grader.auto_ids, grader.manual_ids)
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    return [rows[s.student_id] for s in submissions]
