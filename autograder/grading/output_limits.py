"""Limits on what a kernel sends back to the grader, whatever the submission prints or displays.

nbgrader's own output limit counts lines; one line can be hundreds of megabytes. Here:

- bytes per message: the kernel manager's sockets refuse a larger message before reading it;
- bytes per cell and per notebook (``course_config.OUTPUT_CELL_MAX_BYTES``,
  ``OUTPUT_NOTEBOOK_MAX_BYTES``): outputs past them are dropped, and the cell gets a grader's note.
"""
from __future__ import annotations

import json

from nbformat.notebooknode import NotebookNode

import course_config as cfg


class OutputLimits:
    """A mixin of ``GuardedExecute`` (an nbclient ``NotebookClient``): its ``output`` and
    ``create_kernel_manager`` with the limits; ``_start_output_limits`` before each run."""

    def _start_output_limits(self) -> None:
        self._sent = {"notebook": 0}  # bytes of output kept, per cell index and in all
        self._dropped: set[int] = set()

    def dropped_output_note(self, index: int) -> str:
        """The note for cell ``index`` if some of its output was dropped, else ""."""
        if index not in self._dropped:
            return ""
        return (f"output beyond {cfg.OUTPUT_CELL_MAX_BYTES} bytes in this cell (or "
                f"{cfg.OUTPUT_NOTEBOOK_MAX_BYTES} in the notebook) was dropped")

    def create_kernel_manager(self):
        """The kernel manager, whose sockets refuse any message larger than the limit before reading it,
        and queue few: what the grader holds of a kernel's messages stays bounded."""
        import zmq

        km = super().create_kernel_manager()
        km.context.setsockopt(zmq.MAXMSGSIZE, cfg.KERNEL_MESSAGE_MAX_BYTES)
        km.context.setsockopt(zmq.RCVHWM, cfg.KERNEL_MESSAGE_QUEUE)
        return km

    def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> NotebookNode | None:
        """Keep an output unless the cell or the notebook is over its byte limit."""
        size = len(json.dumps(msg.get("content", {}), default=str))
        kept = self._sent.get(cell_index, 0)
        if kept + size > cfg.OUTPUT_CELL_MAX_BYTES or self._sent["notebook"] + size > cfg.OUTPUT_NOTEBOOK_MAX_BYTES:
            self._dropped.add(cell_index)
            return None
        self._sent[cell_index] = kept + size
        self._sent["notebook"] += size
        return super().output(outs, msg, display_id, cell_index)
