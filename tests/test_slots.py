"""The grader's seats (``autograder/grading/slots.py``) with stand-in zygotes: no kernel, no sandbox."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

import course_config as cfg
from autograder.grading.slots import SlotPool
from autograder.grading.warm import ZygoteFailure
from autograder.kernel import processes, sandbox

pytestmark = pytest.mark.fast


class FakeZygote:
    def __init__(self, index, uid, *, fails=False):
        self.index, self.uid, self.fails = index, uid, fails
        self.launched = self.stopped = False
        self.info = None
        self.log = f"zygote-{index}.log"
        self.dead = False

    def launch(self):
        self.launched = True

    def start(self):
        if self.fails:
            raise ZygoteFailure("it did not start")
        self.info = object()

    def alive(self):
        return not self.dead

    def stop(self):
        self.stopped = True
        self.info = None


def pool(workers=2, *, spare=False, sandboxed=False, failing=()):
    made = []

    def make(index, uid):
        made.append(FakeZygote(index, uid, fails=index in failing))
        return made[-1]
    return SlotPool(workers, spare=spare, sandboxed=sandboxed, make_zygote=make), made


def test_workers_share_their_seats_and_the_canary_has_its_own():
    seats, _ = pool(2, spare=True)
    assert len(seats.slots) == 3 and seats.canary_slot is seats.slots[-1]
    with seats.acquire() as first, seats.acquire() as second:
        assert {id(first), id(second)} == {id(s) for s in seats.slots[:2]}
        with seats.acquire(canary=True) as canary:
            assert canary is seats.canary_slot
    with seats.acquire() as again:  # handed back when the block ends
        assert again in seats.slots[:2]


def test_without_a_spare_core_the_canary_takes_a_workers_seat():
    seats, _ = pool(1)
    assert seats.canary_slot is None and len(seats.slots) == 1
    with seats.acquire(canary=True) as slot:
        assert slot is seats.slots[0]


def test_a_seat_waits_until_one_is_handed_back():
    seats, _ = pool(1)
    got = []
    with seats.acquire():
        waiter = threading.Thread(target=lambda: got.append(seats.acquire().__enter__()))
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive() and not got  # every seat is taken
    waiter.join(5)
    assert got == [seats.slots[0]]


def test_a_zygote_that_does_not_start_leaves_its_seat_cold():
    seats, made = pool(2, failing={1})
    seats.start_zygotes()
    assert [z.index for z in made] == [0, 1] and all(z.launched for z in made)
    assert seats.slots[1].zygote is None and made[1].stopped
    assert seats.zygotes == [made[0]]


def test_a_dead_zygote_is_replaced_before_its_seat_is_used():
    seats, made = pool(1)
    seats.start_zygotes()
    made[0].dead = True
    with seats.acquire() as slot:
        assert made[0].stopped and slot.zygote is made[1] and made[1].info is not None


def test_the_canarys_seat_serves_once_and_gives_its_memory_back():
    seats, made = pool(1, spare=True)
    seats.start_zygotes()
    with seats.acquire(canary=True):
        pass
    assert seats.canary_slot.zygote is None and made[1].stopped


def test_close_stops_the_zygotes_and_releases_the_user_ids(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "LOCK_DIR", tmp_path)
    monkeypatch.setattr(sandbox, "uid_in_use", lambda uid: False)  # the locks alone; the probe: below, as root
    base = 60000
    monkeypatch.setattr("course_config.SANDBOX_UID_BASE", base)
    first = sandbox.first_uid(base)  # base, or in a container a range of its own
    with pool(2, spare=True, sandboxed=True)[0] as seats:
        assert [s.uid for s in seats.slots] == [first, first + 1, first + 2]
        others = sandbox.reserve_uids(1, first)  # another run on this machine gets the next free id
        assert [uid for uid, _ in others] == [first + 3]
        seats.launch_zygotes()
        zygotes = [s.zygote for s in seats.slots]
    assert all(z.stopped for z in zygotes)
    again = sandbox.reserve_uids(3, first)  # released by close
    assert [uid for uid, _ in again] == [first, first + 1, first + 2]
    for _, handle in others + again:
        handle.close()


def hold_uid(uid: int) -> subprocess.Popen:
    """A process running as ``uid`` in a pid namespace of its own, as a container's kernel would."""
    holder = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "setpriv", f"--reuid={uid}",
                               f"--regid={uid}", "--clear-groups", "sleep", "60"])
    deadline = time.monotonic() + 10
    while not sandbox.uid_in_use(uid):
        assert time.monotonic() < deadline, f"the process as {uid} did not start"
        time.sleep(0.05)
    return holder


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root, setpriv and unshare")
def test_an_id_another_namespace_runs_as_is_passed_over_and_taken_once_free(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "LOCK_DIR", tmp_path)
    base = 60200
    assert not sandbox.uid_in_use(base + 1)  # a free id reads as free
    holder = hold_uid(base)
    try:
        assert sandbox.uid_in_use(base)
        taken = sandbox.reserve_uids(2, base)  # no lock names it, yet a process runs as it
        assert [uid for uid, _ in taken] == [base + 1, base + 2]
        for _, handle in taken:
            handle.close()
    finally:
        holder.kill()
        processes.kill_user(base)
        holder.wait()
    deadline = time.monotonic() + 10
    while sandbox.uid_in_use(base) and time.monotonic() < deadline:  # until its zombie is reaped
        time.sleep(0.05)
    again = sandbox.reserve_uids(1, base)
    assert [uid for uid, _ in again] == [base]
    again[0][1].close()


def test_ids_start_at_the_base_on_a_host_and_with_the_hosts_locks_mounted(monkeypatch):
    monkeypatch.setattr(sandbox, "in_container", lambda: False)
    assert sandbox.first_uid(61000) == 61000
    monkeypatch.setattr(sandbox, "in_container", lambda: True)
    monkeypatch.setattr(sandbox, "mounts", lambda: {"/": "overlay", str(sandbox.LOCK_DIR): "the host's"})
    assert sandbox.first_uid(61000) == 61000


ROOTLESS_MAP = "         0       1000          1\n         1     100000      65536\n"  # rootless podman's uid_map
HOST_MAP = "         0          0 4294967295\n"
parse_map = sandbox.mapped_ids  # the real parser, whatever a test put in its place


def first_uids(monkeypatch, uid_map: str, names: list[str]) -> dict[str, int]:
    """``first_uid(61000)`` in containers of these host names, with locks of their own, under ``uid_map``."""
    import socket

    monkeypatch.setattr(sandbox, "in_container", lambda: True)
    monkeypatch.setattr(sandbox, "mounts", lambda: {"/": "overlay upperdir=/var/lib/containers/storage/overlay/1"})
    mapped = parse_map(uid_map)
    monkeypatch.setattr(sandbox, "mapped_ids", lambda: mapped)
    starts = {}
    for name in names:
        monkeypatch.setattr(socket, "gethostname", lambda name=name: name)
        starts[name] = sandbox.first_uid(61000)
        assert starts[name] == sandbox.first_uid(61000)  # the same container, the same range
    return starts


def test_a_container_with_locks_of_its_own_takes_a_range_of_its_own(monkeypatch):
    names = ["a3f1c2d4e5b6", "0c9d8e7f6a5b", "grade-shard-0", "grade-shard-1", "grade-shard-2"]
    starts = first_uids(monkeypatch, HOST_MAP, names)  # a host's map, wherever this runs
    assert all(62000 <= start <= 61000 + 999 * 1000 and start % 1000 == 0 for start in starts.values()), starts
    assert len(set(starts.values())) == len(starts), starts  # five containers, five ranges


def test_a_user_namespaced_container_takes_only_ranges_it_maps(monkeypatch):
    names = [f"grade-shard-{i}" for i in range(20)]
    assert sandbox.mapped_ids(ROOTLESS_MAP) == [(0, 1), (1, 65537)]
    assert set(first_uids(monkeypatch, ROOTLESS_MAP, names).values()) == {62000, 63000, 64000}  # all mapped
    assert max(first_uids(monkeypatch, HOST_MAP, names).values()) > 65536  # on the host's map, all 999 ranges
    assert set(first_uids(monkeypatch, "         0          0      62500\n", names).values()) == {61000}  # none whole
    assert set(first_uids(monkeypatch, "         0          0          1\n", names).values()) == {61000}


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare")
def test_the_map_is_read_from_this_processs_user_namespace():
    inside = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c",
                             "from autograder.kernel import sandbox; print(sandbox.mapped_ids())"],
                            capture_output=True, text=True, cwd=cfg.ROOT, check=False)
    if inside.returncode and "unshare" in inside.stderr:
        pytest.skip(f"no user namespace here: {inside.stderr.strip()}")
    assert inside.stdout.strip() == "[(0, 1)]", inside.stderr
