"""The grader's seats: one per worker (and one for the canary), each with its kernel user and zygote.

A seat (``Slot``) is what one submission grades on: the user id its kernel runs as when the
sandbox is on (reserved for this run by a file lock, so that two runs on one machine never kill
each other's kernels) and, with warm kernels, the zygote that forks its kernels. ``SlotPool`` hands
the seats out to the grading threads, restarts a zygote that died, and on ``close`` stops every
zygote and releases the locks of its user ids.
"""
from __future__ import annotations

import contextlib
import logging
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import course_config as cfg
from autograder.errors import SetupError

if TYPE_CHECKING:
    from autograder.grading.warm import Zygote

log = logging.getLogger(__name__)


@dataclass
class Slot:
    """One worker's seat: its kernel user (None: not sandboxed) and its warm-kernel zygote, if any."""
    uid: int | None
    zygote: Zygote | None = None


class SlotPool:
    """``workers`` seats for submissions and, with ``spare``, one more for the canary (the last one: its
    zygote is ``zygote-<workers>``). ``make_zygote(index, uid)`` makes a (not yet launched) zygote."""

    def __init__(self, workers: int, *, spare: bool, sandboxed: bool,
                 make_zygote: Callable[[int, int | None], Zygote]):
        seats = max(1, workers) + spare
        self._locks: list = []  # (uid, open lock file): the uid is this run's while its file is open
        if sandboxed:
            from autograder.kernel import sandbox

            try:
                self._locks = sandbox.reserve_uids(seats, sandbox.first_uid(cfg.SANDBOX_UID_BASE))
            except RuntimeError as busy:  # every uid of the range is locked by other runs
                raise SetupError(str(busy)) from None
            uids = [uid for uid, _ in self._locks]
        else:
            uids = [None] * seats
        self.slots = [Slot(uid) for uid in uids]
        self.canary_slot = self.slots[-1] if spare else None
        self._free: queue.Queue[Slot] = queue.Queue()
        for slot in self.slots[:max(1, workers)]:
            self._free.put(slot)
        self._make_zygote = make_zygote

    def __enter__(self) -> SlotPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def launch_zygotes(self) -> None:
        """A zygote for every seat that has none, all importing at once (not waited for)."""
        for index, slot in enumerate(self.slots):
            if slot.zygote is None:
                slot.zygote = self._make_zygote(index, slot.uid)
                slot.zygote.launch()

    def start_zygotes(self) -> None:
        """Launch the zygotes and wait for each; one that does not start leaves its seat on cold kernels."""
        self.launch_zygotes()
        for slot in self.slots:
            self._warm_or_cold(slot)

    def _warm_or_cold(self, slot: Slot) -> None:
        from autograder.grading.warm import ZygoteFailure

        try:
            slot.zygote.start()
        except (ZygoteFailure, OSError) as failure:
            log.warning("cold kernels for this slot: %s", failure)
            slot.zygote.stop()
            slot.zygote = None

    @property
    def zygotes(self) -> list[Zygote]:
        """The seats' zygotes that are running (none: every kernel starts cold)."""
        return [slot.zygote for slot in self.slots if slot.zygote is not None and slot.zygote.info]

    @contextlib.contextmanager
    def acquire(self, *, canary: bool = False) -> Iterator[Slot]:
        """A free seat for one submission (``canary``: the canary's own, if there is one); a dead zygote
        is restarted first (or left cold). Waits while every seat is taken."""
        own = canary and self.canary_slot is not None
        slot = self.canary_slot if own else self._free.get()
        try:
            if slot.zygote is not None and not slot.zygote.alive():
                log.warning("the zygote of a slot died (%s); starting another", slot.zygote.log)
                slot.zygote.stop()
                slot.zygote = self._make_zygote(self.slots.index(slot), slot.uid)
                self._warm_or_cold(slot)
            yield slot
        finally:
            if own and slot.zygote is not None:  # the canary's seat serves once: its memory back
                slot.zygote.stop()
                slot.zygote = None
            elif not own:
                self._free.put(slot)

    def close(self) -> None:
        """Stop every zygote and release the user ids' locks (nothing of the pool outlives it)."""
        for slot in self.slots:
            if slot.zygote is not None:
                slot.zygote.stop()
                slot.zygote = None
        for _, handle in self._locks:
            handle.close()
        self._locks = []
