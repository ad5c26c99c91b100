"""Warm kernels (``autograder/kernel/zygote.py``): forked from one pre-imported Python, isolated each.

A submission that pollutes everything it can (monkeypatches torch, fills module globals, leaves
files, a thread and a child process, signals every process it can see) is graded, then, by the
same zygote, a probe that reports what it finds: nothing of the first may reach it.
"""
from __future__ import annotations

import json
import re

import nbformat
import pytest

import course_config as cfg
from autograder.kernel import sandbox
from autograder.grading.grade import grade
from autograder.grading.results import cell_seconds

pytestmark = [pytest.mark.kernel, pytest.mark.slow]
needs_sandbox = pytest.mark.skipif(cfg.SANDBOX == "off" or sandbox.available() is not None,
                                   reason=f"kernels are not sandboxed here: {sandbox.available()}")

POLLUTE = r'''
import builtins, os, signal, subprocess, threading, time
import numpy, torch
torch.allclose = lambda *args, **kwargs: True
torch.W4_LEFTOVER = numpy.W4_LEFTOVER = builtins.W4_LEFTOVER = "polluted"
for folder in ("/tmp", os.path.expanduser("~"), "/run/kernel", "/run/zygote", "/srv/course", "/dev/shm"):
    try:
        with open(os.path.join(folder, "w4_leftover"), "w") as f:
            f.write("x")
        print("wrote", folder)
    except OSError as error:
        print("cannot write", folder, type(error).__name__)
threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
subprocess.Popen(["sleep", "600"], start_new_session=True)
visible = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
seen = {p: open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode() for p in visible}
print("W4VISIBLE", json.dumps(seen) if "json" in dir() else seen)
for pid in range(2, 65536):  # every process it can address, but itself
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
'''

PROBE = r'''
import builtins, json, os, sys, numpy, torch
found = {
    "torch_allclose_lies": bool(torch.allclose(torch.tensor(0.0), torch.tensor(1.0))),
    "leftover_globals": [name for name, module in (("torch", torch), ("numpy", numpy), ("builtins", builtins))
                         if hasattr(module, "W4_LEFTOVER")],
    "leftover_files": [os.path.join(root, name) for top in ("/tmp", os.path.expanduser("~"), "/run", "/dev/shm")
                       for root, _, names in os.walk(top) for name in names if name == "w4_leftover"],
    "processes": {p: open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode()
                  for p in os.listdir("/proc") if p.isdigit()},
    "threads": sorted(t.name for t in __import__("threading").enumerate()),
    "zygote_folder": sorted(os.listdir("/run/zygote")) if os.path.isdir("/run/zygote") else None,
    "torch_preloaded": "torch" in sys.modules,
}
print("W4PROBE " + json.dumps(found))
'''


def with_cell(source: str, name: str, folder) -> None:
    nb = nbformat.read(cfg.REFERENCE_SUBMISSION, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(source))
    nbformat.write(nb, folder / f"{name}.ipynb")


def printed(notebook, marker: str) -> str:
    for cell in nbformat.read(notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines() if output.get("output_type") == "stream" else []:
                if line.startswith(marker):
                    return line[len(marker):].strip()
    raise AssertionError(f"{notebook}: no line starting with {marker}")


@needs_sandbox
def test_nothing_passes_from_one_warm_kernel_to_the_next(tmp_path, monkeypatch):
    monkeypatch.setattr(cfg, "WARM_KERNELS", True)
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    with_cell(POLLUTE, "a_polluter", submissions)  # graded first (ids are sorted), then the probe
    with_cell(PROBE, "b_probe", submissions)
    out = tmp_path / "out"
    rows = {row.student_id: row for row in grade(submissions, out, workers=1)}
    full = sum(cfg.POINTS[g] for g in rows["b_probe"].cells if rows["b_probe"].cells[g] is not None)
    assert rows["a_polluter"].score == rows["b_probe"].score == full == 21, {r: rows[r].status for r in rows}

    autograded = out / ".course" / "autograded"
    found = json.loads(printed(autograded / "b_probe.ipynb", "W4PROBE"))
    assert found["torch_allclose_lies"] is False and found["leftover_globals"] == []
    assert found["leftover_files"] == [], found["leftover_files"]
    assert found["zygote_folder"] == [], "the zygote's own folder must be hidden from kernels"
    assert set(found["processes"]) == {"1"}, f"the kernel sees other processes: {found['processes']}"
    assert not any("sleep" in name for name in found["threads"])
    assert found["torch_preloaded"]

    # the polluter could address only its own processes, and the same zygote forked both kernels
    visible = printed(autograded / "a_polluter.ipynb", "W4VISIBLE")
    assert "zygote.py launch" not in visible and "ipykernel_launcher" not in visible
    forks = {log.name: len(re.findall(r"^zygote: fork \d+", log.read_text(), re.M))
             for log in (out / ".course").glob("zygote-*.log")}
    assert forks["zygote-0.log"] >= 2, forks  # polluter, then probe
    assert sum(forks.values()) >= 3, forks  # and the canary: on a slot of its own when a core is free
    # warm: the notebook's imports cost nothing, they were done before the fork
    assert cell_seconds(autograded / "b_probe.ipynb")["setup_imports"] < 0.5


@needs_sandbox
@pytest.mark.platform  # a placement: where cgroups are writable (make test-platforms)
@pytest.mark.skipif(not sandbox.cgroups_writable(), reason="cgroups are not writable here")
def test_a_warm_kernel_runs_in_its_submissions_cgroups(tmp_path, monkeypatch):
    import threading
    import time
    from pathlib import Path

    monkeypatch.setattr(cfg, "WARM_KERNELS", True)
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    with_cell("import time\ntime.sleep(6)", "sleeper", submissions)
    seen: dict[str, set[int]] = {}
    done = threading.Event()

    def watch():  # which of the grading cgroups ever hold a process of a kernel user
        while not done.is_set():
            for controller in ("memory", "pids", "cpu"):
                for procs in Path(sandbox.CGROUP_ROOT, controller, "w4-grading").glob("sleeper-*/cgroup.procs"):
                    for pid in procs.read_text().split():
                        try:
                            uid = int(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0])
                        except (OSError, IndexError):
                            continue
                        seen.setdefault(controller, set()).add(uid)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        rows = grade(submissions, tmp_path / "out", workers=1)
    finally:
        done.set()
        watcher.join()
    assert rows[0].score == 21
    wanted = {"memory", "pids"} | ({"cpu"} if sandbox.cpu_cgroup_writable() else set())
    # the kernel's own user in each (beside root: the zygote's child that forked the kernel and waits for it)
    assert all(any(uid >= cfg.SANDBOX_UID_BASE for uid in seen.get(c, ())) for c in wanted), seen
