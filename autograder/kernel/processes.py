"""The processes of a sandbox user: found from /proc, and killed until none is left.

Every kernel runs as a user id of its own (``grading/slots.py``), so its processes, and whatever
it forked, are exactly that user's. Standard library only, like the rest of ``kernel/``.
"""
from __future__ import annotations

import os
import signal
import time


def user_pids(uid: int) -> set[int]:
    """The live processes whose real user id is ``uid`` (zombies, which hold nothing, left out), from /proc."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:  # it ended while we read
            continue
        if int(fields.get("Uid", "-1").split()[0]) == uid and not fields.get("State", "").strip().startswith("Z"):
            pids.add(int(entry))
    return pids


def kill_user(uid: int, keep: frozenset[int] | set[int] = frozenset(), patience_s: float = 10.0) -> int:
    """Kill every process of the sandbox user but ``keep`` (a fork bomb's leftovers), until none is left;
    return how many were killed.

    One pass can miss children forked while it scans, so passes repeat until one finds nothing.
    The worker calls this after each submission (``keep`` empty), the executor after each cell
    (``keep``: the kernel's own processes).
    """
    killed: set[int] = set()
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        left = user_pids(uid) - set(keep)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)
    return len(killed)
