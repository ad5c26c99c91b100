"""How the grader talks to the kernel outside the notebook's cells: silent requests, the guard and the probe.

``GuardedExecute`` (``execute.py``) runs the notebook's cells; between them it calls the kernel's guard
and asks its probe the hidden tests' questions through these methods: each is a silent execute request
whose ``user_expressions`` carry the call (no cell, no history), answered within a deadline after which
the kernel is interrupted, and then lost (``KernelLost``). What the kernel publishes meanwhile is dropped
unread.
"""
from __future__ import annotations

import asyncio
import json
import time

from jupyter_core.utils import ensure_async, run_sync
from nbformat.notebooknode import NotebookNode

from autograder import kernel
from autograder.grading import judge
from autograder.grading.cell_record import cell_key

TIMEOUT_NOTE = "time limit"  # what the notes say of a cell stopped at its limit (the worker grades it again)


class KernelLost(judge.Interrupted):
    """The kernel died or stopped answering while running cell ``index`` (``judging``: while
    answering the grader's questions about it)."""

    def __init__(self, index: int, reason: str, judging: bool = False, timed_out: bool = False,
                 by_submission: bool = False):
        super().__init__(reason)
        self.index, self.reason, self.judging, self.timed_out = index, reason, judging, timed_out
        self.by_submission = by_submission  # certainly the submission's doing (its own MemoryError)

    @property
    def machine_may_be_at_fault(self) -> bool:
        """A kernel that died may have been killed from outside (the machine's memory, another run):
        the worker grades the notebook a second time, as after a time limit."""
        return not self.timed_out and not self.by_submission


class KernelChannel:
    """The grader's side of the channel (a mixin of ``GuardedExecute``: it uses its ``kc``, ``km``,
    ``guard_timeout``, ``interrupt_grace``, ``judge``, its record (``cell_record.CellRecord``) and
    ``_kill_strays``)."""

    def _judge(self, cell: NotebookNode, index: int, guard_token: str, probe_token: str,
               lost: KernelLost | None) -> None:
        """Judge the test cell's hidden tests here, from the kernel's answers to the probe."""
        gid = cell_key(cell, index)
        if lost is not None:  # an earlier attempt lost the kernel while judging this cell
            self.verdicts[gid] = judge.Verdict(0.0, f"the kernel was lost while the grader asked about this cell: "
                                                    f"{lost.reason}", timed_out=lost.timed_out)
            self._note(cell, index, f"the grader's questions about this cell were not answered: {lost.reason}")
            if lost.timed_out:
                self.timeouts.add(gid)
            elif lost.machine_may_be_at_fault:
                self.lost.add(gid)
            return
        repaired = self._guard(guard_token, "restore", index)
        if repaired:
            self._note(cell, index, "restored before the grader's questions, changed by the submission: " + repaired)
        limit = self._cell_timeout(cell)
        deadline = time.monotonic() + limit

        def ask(question: dict) -> dict:
            return self._ask(probe_token, question, index, deadline, limit)

        verdict = self.judge.judge(gid, ask)
        if self.sandbox_uid is not None:  # the student's code ran while it answered
            self._kill_strays(cell, index)
        if verdict.timed_out:
            self.timeouts.add(gid)
            self._note(cell, index, f"the grader's questions were interrupted after the cell's {limit} s {TIMEOUT_NOTE}")
        self.verdicts[gid] = verdict

    def _guard(self, token: str, method: str, index: int, *args) -> str:
        """Call the kernel's guard; return what it repaired, as text ("" when nothing)."""
        result = self._silent("", index, {"r": kernel.call_expression(token, method, *args)})
        if result is None:
            return ""
        if result.get("status") != "ok":
            return f"the guard itself (it raised {result.get('ename')})"
        try:
            repairs = kernel.parse_answer(result["data"]["text/plain"])
        except (KeyError, ValueError, SyntaxError):
            return "the guard itself (its answer could not be read)"
        return ", ".join(str(r) for r in repairs) if isinstance(repairs, list) else "the guard itself"

    def _ask(self, token: str, question: dict, index: int, deadline: float, limit: int) -> dict:
        """One question to the kernel's probe; its JSON reply (``judge.Student`` checks it)."""
        expression = kernel.call_expression(token, "ask", json.dumps(question))
        result = run_sync(self._async_request)("", index, {"r": expression}, deadline, True)
        if result is None:
            raise judge.Unreadable("the kernel's answer could not be read")
        if result.get("status") != "ok":
            if result.get("ename") == "KeyboardInterrupt" and time.monotonic() >= deadline:
                raise judge.QuestionTimeout(f"the grader's questions ran past this cell's {limit} s time limit")
            return {"raised": {"type": str(result.get("ename")), "message": str(result.get("evalue", ""))[:2000]}}
        try:
            return kernel.parse_answer(result["data"]["text/plain"])
        except (KeyError, ValueError, SyntaxError, TypeError) as error:
            raise judge.Unreadable("the kernel's answer could not be read") from error

    def _silent(self, code: str, index: int, expressions: dict[str, str] | None = None) -> dict | None:
        """Run grader code in the kernel, outside the notebook; return expression ``r``'s result."""
        return run_sync(self._async_request)(code, index, expressions or {},
                                             time.monotonic() + self.guard_timeout, False)

    async def _drop_iopub(self) -> None:
        """Discard, unread, what the kernel published while it answered the grader outside the cells:
        nothing of it is shown, and left queued it would pile up in the grader's memory."""
        import zmq

        socket = self.kc.iopub_channel.socket
        while True:
            try:
                await ensure_async(socket.recv_multipart(flags=zmq.NOBLOCK, copy=False))
            except zmq.Again:
                return

    async def _async_request(self, code: str, index: int, expressions: dict[str, str], deadline: float,
                             interrupt: bool) -> dict | None:
        """Send a silent execute request; wait for its reply until ``deadline``. Past it, the kernel is
        interrupted (``interrupt``) and gets ``interrupt_grace`` more seconds, or is lost."""
        msg_id = self.kc.execute(code, silent=True, store_history=False, user_expressions=expressions)
        interrupted = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if interrupt and not interrupted:
                    await ensure_async(self.km.interrupt_kernel())
                    interrupted, deadline = True, time.monotonic() + self.interrupt_grace
                    continue
                raise KernelLost(index, "the kernel stopped answering" + (
                    f" the grader's questions and ignored the interrupt at the {TIMEOUT_NOTE}" if interrupt else ""),
                    judging=interrupt, timed_out=interrupt)
            if not await ensure_async(self.kc.is_alive()):
                raise KernelLost(index, "the kernel died while answering the grader's questions" if interrupt
                                 else "the kernel stopped answering", judging=interrupt)
            await self._drop_iopub()
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=min(remaining, 0.2)))
            except (asyncio.TimeoutError, TimeoutError, Exception) as error:  # queue.Empty on timeout
                if type(error).__name__ in ("Empty", "TimeoutError"):
                    continue
                raise
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            return msg["content"].get("user_expressions", {}).get("r")
