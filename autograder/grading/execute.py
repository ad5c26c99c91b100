"""nbgrader's Execute step, hardened for untrusted submissions, with the hidden tests judged outside.

``GuardedExecute`` replaces nbgrader's ``Execute`` in the autograde pipeline. It runs the cells
in order in one kernel, as nbgrader does, and adds:

- the judge (``autograder/grading/judge.py``): right after each test cell, its hidden tests run here, in
  the grader, and ask the kernel questions through the probe (``autograder/kernel/probe.py``);
  the kernel never receives a hidden test, an expected value or a verdict. The verdicts go to
  ``ScoreVerdicts`` (the next step) through the resources, and into the record;
- the guard (``autograder/kernel/guard.py``): snapshots after each locked cell, restores before
  each locked cell and before the grader's questions, with a note for anything it had to repair;
- survival: when a cell kills the kernel (``os._exit``, the memory limit, a crash) or ignores the
  interrupt after its time limit, the notebook is run again in a fresh kernel without that cell,
  which gets an error output saying why; the cells that do not depend on it still count. A test
  cell whose questions did the same is judged 0, and the rest goes on in a fresh kernel;
- limits on what the kernel sends back (``output_limits.py``): bytes per message (larger ones are
  refused by the socket before they are read), per cell and per notebook (the rest is dropped,
  with a note);
- the record (``cell_record.py``, ``record_path``): the verdicts, the grader's notes and each graded
  cell's time, written by the grader itself. Nothing the kernel prints is ever read as a score or a note.

The questions and the guard's calls travel through ``kernel_channel.py``; this module runs the cells.
"""
from __future__ import annotations

import ast
import copy
import time
from typing import Any

from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute
from traitlets import Dict, Float, Integer, Unicode

import course_config as cfg
from autograder import kernel
from autograder.grading import judge
from autograder.kernel import guard, probe, processes
from autograder.notebook_code import is_test_cell, nbgrader_meta
from autograder.grading.kernel_channel import TIMEOUT_NOTE, KernelChannel, KernelLost
from autograder.grading.preprocessors import REPAIRED
from autograder.grading.cell_record import CellRecord, cell_key, note_output
from autograder.grading.output_limits import OutputLimits
from autograder.grading.results import GraderFault



class KernelStartFailure(GraderFault):
    """No kernel could be started for this submission: a fault of the grader or the machine."""


def out_of_memory(cell: NotebookNode) -> bool:
    """The cell failed to allocate memory (Python's MemoryError or PyTorch's allocator)."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error" and (
                output.get("ename") == "MemoryError" or "Cannot allocate memory" in output.get("evalue", "")):
            return True
    return False


def defined_names(source: str) -> list[str]:
    """Top-level names a cell binds (assignments, defs, classes, imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names += [(alias.asname or alias.name).split(".")[0] for alias in node.names]
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    return names


def is_locked_code(cell: NotebookNode) -> bool:
    """A locked code cell that is neither a test nor an answer: the notebook's given code."""
    return (cell.cell_type == "code" and utils.is_locked(cell) and not utils.is_grade(cell)
            and not utils.is_solution(cell))


class GuardedExecute(CellRecord, OutputLimits, KernelChannel, Execute):
    """Execute with the judge outside the kernel, a tamper guard, limits, and recovery from cells
    that kill or hang the kernel."""

    max_restarts = Integer(4, help="fresh kernels to try after cells that kill or hang one").tag(config=True)
    guard_timeout = Integer(30, help="seconds the guard and liveness probes may take").tag(config=True)
    interrupt_grace = Integer(10, help="seconds a kernel has to answer after an interrupt").tag(config=True)
    sandbox_uid = Integer(None, allow_none=True, help="the kernel's user: processes it leaves behind are killed").tag(config=True)
    cell_timeouts = Dict(value_trait=Float(), help="grade id -> seconds that cell may run (default: timeout)").tag(config=True)
    source_notebook = Unicode(str(cfg.SOURCE_NOTEBOOK), help="the trusted source notebook: its hidden tests").tag(config=True)
    record_path = Unicode("", help="where to write the record (verdicts, notes, times) as JSON").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> tuple[NotebookNode, Any]:
        self.judge = judge.Judge(self.source_notebook)
        pristine = copy.deepcopy(nb)
        skipped: dict[int, KernelLost] = {}  # cells not run again: they killed or hung the kernel
        unjudged: dict[int, KernelLost] = {}  # test cells whose questions killed or hung the kernel
        start_failure = ""
        for _ in range(self.max_restarts + 1):
            attempt = copy.deepcopy(pristine)
            start_failure = ""
            try:
                self._run_once(attempt, resources, km, skipped, unjudged)
                return self._finish(self.nb, self.resources)
            except KernelLost as lost:
                if lost.judging:
                    self.log.warning("cell %d: %s while the grader asked about it; judged 0, running again",
                                     lost.index, lost.reason)
                    unjudged[lost.index] = lost
                elif lost.index >= 0 and not utils.is_locked(pristine.cells[lost.index]):
                    self.log.warning("cell %d: %s; running the notebook again without it", lost.index, lost.reason)
                    skipped[lost.index] = lost
                else:  # the notebook's own code is never skipped: what broke it was left over, retry
                    self.log.warning("cell %d (locked): %s; retrying in a fresh kernel", lost.index, lost.reason)
                    time.sleep(1)
            except GraderFault:
                raise
            except RuntimeError as error:  # a kernel that does not start (a fork bomb's leftovers)
                self.log.warning("the kernel did not start (%s); trying a fresh one", error)
                start_failure = str(error) or type(error).__name__
            if self.sandbox_uid is not None:  # what a fork bomb left would starve the next kernel
                processes.kill_user(self.sandbox_uid)
        if start_failure:  # not the student's doing: no score at all, rather than zeros
            raise KernelStartFailure(f"the kernel did not start after {self.max_restarts + 1} tries: {start_failure}")
        # too many bad cells: keep what the last attempt produced, mark the rest
        for index, cell in enumerate(attempt.cells):
            if cell.cell_type == "code" and index not in self._reached:
                self._note(cell, index, "not run: the grader gave up after repeated kernel failures", error=True)
                self.lost.add(cell_key(cell, index))
        return self._finish(attempt, resources)

    def _run_once(self, nb: NotebookNode, resources: Any, km: Any, skipped: dict[int, KernelLost],
                  unjudged: dict[int, KernelLost]) -> None:
        # the body of nbconvert's ExecutePreprocessor.preprocess, with the judge, the guard and recovery
        NotebookClient.__init__(self, nb, km)
        self.timeout_func = self._cell_timeout
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._start_record()
        self._start_output_limits()
        self._reached: set[int] = set()  # cells this attempt ran (or skipped on purpose)
        guard_token, probe_token = kernel.new_token(), kernel.new_token()
        with self.setup_kernel():
            info = self.wait_for_reply(self.kc.kernel_info())
            self.nb.metadata["language_info"] = info["content"]["language_info"]
            # before any student code: the kernel alone (it runs under bwrap: not the provisioner's pid)
            self._kernel_pids = processes.user_pids(self.sandbox_uid) if self.sandbox_uid is not None else set()
            self._silent(kernel.install_code(guard, guard_token, **guard.options()), index=-1)
            self._silent(kernel.install_code(probe, probe_token), index=-1)
            for index, cell in enumerate(self.nb.cells):
                repair = cell.metadata.pop(REPAIRED, None)
                if repair:  # RepairStructure's, during nbgrader's sanitizing; shown once the cell ran
                    self.notes.setdefault(cell_key(cell, index), []).append(str(repair))
                if index in skipped:
                    self._note(cell, index, f"not run: {skipped[index].reason}", error=True)
                    if skipped[index].timed_out:  # the worker grades such a notebook a second time
                        self.timeouts.add(cell_key(cell, index))
                    elif skipped[index].machine_may_be_at_fault:  # so it does when the kernel died
                        self.lost.add(cell_key(cell, index))
                    self._reached.add(index)
                    continue
                if cell.cell_type != "code":
                    continue
                self._reached.add(index)
                started = time.perf_counter()
                locked = is_locked_code(cell)
                repaired = ""
                if locked or utils.is_grade(cell):  # the notebook's own code runs untampered too
                    repaired = self._guard(guard_token, "restore", index)
                self._execute(cell, index)  # nbclient clears the cell's outputs first
                if repair:
                    cell.outputs.insert(0, note_output(str(repair)))
                if self.sandbox_uid is not None and not locked:
                    self._kill_strays(cell, index)
                if dropped := self.dropped_output_note(index):
                    self._note(cell, index, dropped)
                if repaired:
                    self._note(cell, index, "restored before this cell, changed by the submission: " + repaired,
                               first=True)
                if locked:
                    self._guard(guard_token, "record", index, sorted(defined_names(cell.source)))
                if is_test_cell(cell):
                    self._judge(cell, index, guard_token, probe_token, unjudged.get(index))
                if nbgrader_meta(cell).get("grade_id"):  # the canary's times set the limits
                    self.seconds[cell_key(cell, index)] = time.perf_counter() - started
        self.set_widgets_metadata()

    def _cell_timeout(self, cell: NotebookNode) -> int:
        gid = nbgrader_meta(cell).get("grade_id")
        return int(max(self.timeout or 0, self.cell_timeouts.get(gid, 0)))

    def _execute(self, cell: NotebookNode, index: int) -> None:
        try:
            self.preprocess_cell(cell, self.resources, index)
        except DeadKernelError as error:
            raise KernelLost(index, "the kernel died while running this cell (exit, crash or memory limit)") from error
        except CellTimeoutError as error:  # no reply even after the interrupt
            raise KernelLost(index, f"the cell ran past its {self._cell_timeout(cell)} s {TIMEOUT_NOTE} and ignored the "
                                    "interrupt", timed_out=True) from error
        if not is_locked_code(cell) and not utils.is_grade(cell) and out_of_memory(cell):
            # the memory it holds would starve every later cell: drop the cell, not the notebook
            raise KernelLost(index, "the cell ran out of memory", by_submission=True)
        timed_out = any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError" for o in cell.outputs)
        if timed_out:
            try:
                self._silent("pass", index)
            except KernelLost:
                raise KernelLost(index, f"the cell ran past its {self._cell_timeout(cell)} s {TIMEOUT_NOTE} and ignored "
                                        "the interrupt", timed_out=True) from None
            self.timeouts.add(cell_key(cell, index))
            self._note(cell, index, f"interrupted after its {self._cell_timeout(cell)} s {TIMEOUT_NOTE}")

    # --- Processes the kernel leaves ------------------------------------------------------

    def _kill_strays(self, cell: NotebookNode, index: int) -> None:
        """Kill every process of the kernel's user but the kernel: a cell may leave none behind.

        Forked copies of the kernel (a fork bomb) would otherwise eat the CPU of every other
        submission graded on this machine and answer the grader's messages in the kernel's place.
        """
        stopped = processes.kill_user(self.sandbox_uid, keep=self._kernel_pids)
        if stopped:
            self._note(cell, index, f"{stopped} process(es) the cell left running were stopped")
