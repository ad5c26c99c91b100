"""nbgrader's Execute step, hardened for untrusted submissions.

``GuardedExecute`` replaces nbgrader's ``Execute`` in the autograde pipeline. It runs the cells
in order in one kernel, as nbgrader does, and adds three things:

- the guard of ``autograder/kernel/guard.py``: snapshots after each locked cell, restores before each
  test cell, and a note on the test cell for anything it had to repair;
- survival: when a cell kills the kernel (``os._exit``, the memory limit, a crash) or ignores
  the interrupt after its time limit, the notebook is run again in a fresh kernel without that
  cell, which gets an error output saying why; the cells that do not depend on it still count;
- an optional kernel name (the sandboxed kernel of ``autograder/sandbox.py``).
"""
from __future__ import annotations

import ast
import asyncio
import copy
import subprocess
import time
from typing import Any

from jupyter_core.utils import ensure_async, run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode, from_dict
from nbgrader import utils
from nbgrader.preprocessors import Execute
from traitlets import Dict, Float, Integer, List, Unicode

from autograder import kernel
from autograder.kernel import guard
from autograder.results import NOTE_PREFIX


class KernelStartFailure(RuntimeError):
    """No kernel could be started for this submission: a fault of the grader or the machine."""


def out_of_memory(cell: NotebookNode) -> bool:
    """The cell failed to allocate memory (Python's MemoryError or PyTorch's allocator)."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error" and (
                output.get("ename") == "MemoryError" or "Cannot allocate memory" in output.get("evalue", "")):
            return True
    return False


class KernelLost(Exception):
    """The kernel died or stopped answering while running cell ``index``."""

    def __init__(self, index: int, reason: str):
        super().__init__(reason)
        self.index, self.reason = index, reason


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


def note(text: str) -> NotebookNode:
    # stdout: nbgrader scores any stderr output in a test cell as a failure
    return from_dict({"output_type": "stream", "name": "stdout", "text": NOTE_PREFIX + text + "\n"})


def warnings_to_stdout(cell: NotebookNode) -> None:
    """Show a test cell's stderr (library warnings) as stdout.

    nbgrader gives 0 to a test cell with any stderr output, so a deprecation warning raised
    by a correct answer would cost the points; an exception is still an error output.
    """
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            output["name"] = "stdout"
            output["text"] = "".join("[stderr] " + line for line in output["text"].splitlines(keepends=True))


def not_run_error(reason: str) -> NotebookNode:
    return from_dict({"output_type": "error", "ename": "CellNotRun", "evalue": reason,
                      "traceback": [f"CellNotRun: {reason}"]})


class GuardedExecute(Execute):
    """Execute with a tamper guard, and recovery from cells that kill or hang the kernel."""

    max_restarts = Integer(4, help="fresh kernels to try after cells that kill or hang one").tag(config=True)
    guard_timeout = Integer(30, help="seconds the guard and liveness probes may take").tag(config=True)
    cleanup_command = List(Unicode(), help="run after losing a kernel, e.g. to kill what a fork bomb left").tag(config=True)
    sandbox_uid = Integer(None, allow_none=True, help="the kernel's user: processes it leaves behind are killed").tag(config=True)
    cell_timeouts = Dict(value_trait=Float(), help="grade id -> seconds that cell may run (default: timeout)").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> tuple[NotebookNode, Any]:
        pristine = copy.deepcopy(nb)
        skipped: dict[int, str] = {}
        start_failure = ""
        for _ in range(self.max_restarts + 1):
            attempt = copy.deepcopy(pristine)
            start_failure = ""
            try:
                self._run_once(attempt, resources, km, skipped)
                return self.nb, self.resources
            except KernelLost as lost:
                if lost.index >= 0 and not utils.is_locked(pristine.cells[lost.index]):
                    self.log.warning("cell %d: %s; running the notebook again without it", lost.index, lost.reason)
                    skipped[lost.index] = lost.reason
                else:  # the notebook's own code is never skipped: what broke it was left over, retry
                    self.log.warning("cell %d (locked): %s; retrying in a fresh kernel", lost.index, lost.reason)
                    time.sleep(1)
            except RuntimeError as error:  # a kernel that does not start (a fork bomb's leftovers)
                self.log.warning("the kernel did not start (%s); trying a fresh one", error)
                start_failure = str(error) or type(error).__name__
            if self.cleanup_command:
                subprocess.run(self.cleanup_command, capture_output=True)
        if start_failure:  # not the student's doing: no score at all, rather than zeros
            raise KernelStartFailure(f"the kernel did not start after {self.max_restarts + 1} tries: {start_failure}")
        # too many bad cells: keep what the last attempt produced, mark the rest
        for index, cell in enumerate(attempt.cells):
            if cell.cell_type == "code" and not cell.get("outputs"):
                cell.outputs = [not_run_error("the grader gave up after repeated kernel failures")]
        return attempt, resources

    def _run_once(self, nb: NotebookNode, resources: Any, km: Any, skipped: dict[int, str]) -> None:
        # the body of nbconvert's ExecutePreprocessor.preprocess, with the guard and recovery
        NotebookClient.__init__(self, nb, km)
        self.timeout_func = self._cell_timeout
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        token = kernel.new_token()
        with self.setup_kernel():
            info = self.wait_for_reply(self.kc.kernel_info())
            self.nb.metadata["language_info"] = info["content"]["language_info"]
            self._kernel_pids = self._user_pids()  # before any student code: the kernel alone
            self._silent(kernel.install_code(guard, token, **guard.options()), index=-1)
            for index, cell in enumerate(self.nb.cells):
                repaired = ""
                if index in skipped:
                    cell.outputs = [not_run_error(f"not run: {skipped[index]}")]
                    continue
                if cell.cell_type != "code":
                    continue
                locked = is_locked_code(cell)
                if locked or utils.is_grade(cell):  # the notebook's own code runs untampered too
                    repaired = self._silent("", index, {"r": kernel.call_expression(token, "restore")})
                self._execute(cell, index)
                if self.sandbox_uid is not None and not locked:
                    self._kill_strays(cell)
                if utils.is_grade(cell):
                    warnings_to_stdout(cell)
                if repaired:
                    cell.outputs.insert(0, note("restored before this cell, changed by the submission: " + repaired))
                if locked:
                    self._silent(kernel.call_expression(token, "record", sorted(defined_names(cell.source))), index)
        self.set_widgets_metadata()

    def _cell_timeout(self, cell: NotebookNode) -> int:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        return int(max(self.timeout or 0, self.cell_timeouts.get(gid, 0)))

    def _execute(self, cell: NotebookNode, index: int) -> None:
        try:
            self.preprocess_cell(cell, self.resources, index)
        except DeadKernelError as error:
            raise KernelLost(index, "the kernel died while running this cell (exit, crash or memory limit)") from error
        except CellTimeoutError as error:  # no reply even after the interrupt
            raise KernelLost(index, f"the cell ran past its {self._cell_timeout(cell)} s time limit and ignored the "
                                    "interrupt") from error
        if not is_locked_code(cell) and not utils.is_grade(cell) and out_of_memory(cell):
            # the memory it holds would starve every later cell: drop the cell, not the notebook
            raise KernelLost(index, "the cell ran out of memory")
        timed_out = any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError" for o in cell.outputs)
        if timed_out:
            try:
                self._silent("pass", index)
            except KernelLost:
                raise KernelLost(index, f"the cell ran past its {self._cell_timeout(cell)} s time limit and ignored "
                                        "the interrupt")
            cell.outputs.append(note(f"interrupted after its {self._cell_timeout(cell)} s time limit"))

    def _kill_strays(self, cell: NotebookNode) -> None:
        """Kill every process of the kernel's user but the kernel: a cell may leave none behind.

        Forked copies of the kernel (a fork bomb) would otherwise eat the CPU of every other
        submission graded on this machine and answer the grader's messages in the kernel's place.
        """
        import psutil

        left = self._user_pids() - self._kernel_pids  # once: it walks every process of the machine
        strays = [p for p in psutil.process_iter() if p.pid in left]
        for stray in strays:
            try:
                stray.kill()
            except psutil.Error:
                pass
        if strays:
            cell.outputs.append(note(f"{len(strays)} process(es) the cell left running were stopped"))

    def _user_pids(self) -> set[int]:
        """Processes of the kernel's user (the kernel runs under bwrap, so it is not the provisioner's pid)."""
        import psutil

        if self.sandbox_uid is None:
            return set()
        return {p.pid for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == self.sandbox_uid}

    def _silent(self, code: str, index: int, expressions: dict[str, str] | None = None) -> str:
        """Run grader code in the kernel, outside the notebook; return expression ``r`` as text."""
        return run_sync(self._async_silent)(code, index, expressions or {})

    async def _async_silent(self, code: str, index: int, expressions: dict[str, str]) -> str:
        msg_id = self.kc.execute(code, silent=True, store_history=False, user_expressions=expressions)
        deadline = time.monotonic() + self.guard_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await ensure_async(self.kc.is_alive()):
                raise KernelLost(index, "the kernel stopped answering")
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=min(remaining, 1.0)))
            except (asyncio.TimeoutError, TimeoutError, Exception) as error:  # queue.Empty on timeout
                if type(error).__name__ in ("Empty", "TimeoutError"):
                    continue
                raise
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            result = msg["content"].get("user_expressions", {}).get("r")
            if not result:
                return ""
            if result.get("status") != "ok":
                return "the guard itself (it raised " + str(result.get("ename")) + ")"
            try:
                repairs = kernel.parse_answer(result["data"]["text/plain"])
            except (KeyError, ValueError, SyntaxError):
                return "the guard itself (its answer could not be read)"
            return ", ".join(str(r) for r in repairs)
