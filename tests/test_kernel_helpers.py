"""The helpers of the warm kernels' zygote, the sandbox's launcher and the grader's channel to the kernel,
called directly: no kernel, no bubblewrap, no root."""
from __future__ import annotations

import io
import json
import os
import socket
import stat
import subprocess
import sys
import time

import pytest

from autograder import kernel
from autograder.grading import warm
from autograder.kernel import processes, sandbox, zygote

pytestmark = pytest.mark.fast


def config(**changes) -> sandbox.SandboxConfig:
    values = dict(uid=60001, gid=60001, readonly=["/opt/venv"], masked=[], files={"/home/student/data": "/c/data"},
                  ipc="/tmp/ipc", memory_bytes=2**30, max_processes=64, scratch_bytes=2**26)
    return sandbox.SandboxConfig(**{**values, **changes})


def test_messages_cross_a_socket_as_one_json_line_each():
    left, right = socket.socketpair()
    with left, right:
        zygote.send(left, {"kernel": 1, "argv": ["a b", "ü"]})
        zygote.send(left, {"kernel": 2})
        stream = right.makefile("r")
        assert zygote.receive(stream) == {"kernel": 1, "argv": ["a b", "ü"]}
        assert zygote.receive(stream) == {"kernel": 2}


def test_a_closed_connection_is_an_error_not_an_empty_message():
    with pytest.raises(ConnectionError, match="closed"):
        zygote.receive(io.StringIO(""))


def test_host_pid_outside_a_pid_namespace_is_the_pid_itself():
    assert zygote.host_pid(0, 1234) == 1234


def test_host_pid_finds_a_child_below_the_zygote_and_nothing_elsewhere():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 5
        while zygote.host_pid(os.getpid(), child.pid) is None and time.monotonic() < deadline:
            time.sleep(0.01)  # its /proc entry appears with the process
        assert zygote.host_pid(os.getpid(), child.pid) == child.pid
        assert zygote.host_pid(child.pid, os.getpid()) is None  # not below that process
    finally:
        child.kill()
        child.wait()


def test_mounts_under_lists_only_what_is_strictly_below_parents_first():
    everything = zygote.mounts_under("/")
    assert everything, "a Linux machine mounts something below /"
    depths = [point.count("/") for point, _ in everything]
    assert depths == sorted(depths)
    assert zygote.mounts_under("/no/such/folder") == []


def test_a_sandboxed_connection_file_names_its_sockets_inside(tmp_path):
    sockets = tmp_path / "ipc" / "k-1"
    sockets.mkdir(parents=True)
    original = tmp_path / "kernel-1.json"
    original.write_text(json.dumps({"transport": "ipc", "ip": str(sockets / "kernel-ipc"), "shell_port": 1}))
    inside = zygote.sandboxed_connection(str(original), str(tmp_path / "ipc"), "/run/kernel", os.getuid(),
                                         os.getgid(), "connection.json")
    assert inside == "/run/kernel/k-1/connection.json"
    written = sockets / "connection.json"
    assert json.loads(written.read_text()) == {"transport": "ipc", "ip": "/run/kernel/k-1/kernel-ipc", "shell_port": 1}
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_a_kernel_on_tcp_is_refused(tmp_path):
    original = tmp_path / "kernel-1.json"
    original.write_text(json.dumps({"transport": "tcp", "ip": "127.0.0.1"}))
    with pytest.raises(SystemExit, match="needs 'ipc'"):
        zygote.sandboxed_connection(str(original), str(tmp_path), "/run/kernel", os.getuid(), os.getgid(), "c.json")


def test_the_kernel_environment_is_an_allowlist(monkeypatch):
    monkeypatch.setenv("JUPYTER_TOKEN", "secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = sandbox.kernel_environment(config(env={"OMP_NUM_THREADS": "2"}))
    assert "JUPYTER_TOKEN" not in env and env["LANG"] == "C.UTF-8"
    assert env["HOME"] == sandbox.HOME and env["OMP_NUM_THREADS"] == "2" and env["TMPDIR"] == "/tmp"


def test_the_kernel_runs_as_its_user_with_limits_after_bwrap():
    argv = sandbox.bwrap_argv(config(), ["python", "-m", "ipykernel_launcher"])
    assert argv[0] == "bwrap" and argv[-3:] == ["python", "-m", "ipykernel_launcher"]
    setpriv = argv.index("setpriv")
    assert "--unshare-net" in argv[:setpriv] and "--reuid=60001" in argv and "--no-new-privs" in argv
    assert argv.index("prlimit") > setpriv and "--data=1073741824" in argv and "--nproc=64" in argv


def test_a_sandbox_config_survives_its_file(tmp_path):
    original = config(cgroup="w4/x", cgroup_controllers=["memory"])
    assert sandbox.SandboxConfig.read(original.write(tmp_path / "c.json")) == original


def test_the_launch_config_carries_the_limits_of_the_sandbox(tmp_path):
    info = warm.ZygoteInfo(str(tmp_path / "z.sock"), 99, str(tmp_path / "ipc"), True)
    settings = json.loads(warm.launch_config(tmp_path / "l.json", info, config(), "/x/ipc").read_text())
    assert settings["limits"] == {"RLIMIT_DATA": 2**30, "RLIMIT_NPROC": 64, "RLIMIT_NOFILE": 1024, "RLIMIT_CORE": 0}
    assert settings["zygote_pid"] == 99 and settings["uid"] == 60001 and settings["ipc_inside"] == sandbox.IPC_DIR
    cold = json.loads(warm.launch_config(tmp_path / "m.json", info, None, "/x/ipc").read_text())
    assert cold["uid"] is None and cold["limits"] == {}


def test_the_warm_kernelspec_starts_the_launcher_without_site_packages(tmp_path):
    info = warm.ZygoteInfo(str(tmp_path / "z.sock"), 99, str(tmp_path / "ipc"), False)
    spec = json.loads((warm.launcher_kernelspec(tmp_path, info, tmp_path / "l.json") / "kernel.json").read_text())
    assert spec["argv"][1:4] == ["-S", str(warm.ZYGOTE_FILE), "launch"]
    assert spec["argv"][-1] == "{connection_file}" and spec["interrupt_mode"] == "message"


def test_the_zygote_file_runs_alone_with_the_standard_library():
    """The launcher is ``python -S zygote.py``: no site-packages, no repository on the path."""
    done = subprocess.run([sys.executable, "-S", "-c", f"import runpy; runpy.run_path({str(warm.ZYGOTE_FILE)!r})"],
                          capture_output=True, text=True, cwd="/", timeout=30)
    assert "ModuleNotFoundError" not in done.stderr, done.stderr


def test_call_expression_reaches_the_module_through_builtins():
    expression = kernel.call_expression("_w4abc", "record", ["a", "b"])
    assert expression == "__import__('builtins')._w4abc.record(['a', 'b'])"
    assert kernel.new_token() != kernel.new_token() and kernel.new_token().startswith("_w4")


def test_one_builder_makes_every_kernels_sandbox_with_the_course_limits():
    import course_config as cfg
    from autograder.grading.machine import kernel_sandbox

    built = kernel_sandbox(60001, {"/home/student/data": "/c/data"}, "/x/ipc", 2, cgroup="w4/a", controllers=["pids"])
    assert (built.uid, built.gid, built.ipc, built.cgroup, built.cgroup_controllers) == (60001, 60001, "/x/ipc", "w4/a",
                                                                                         ["pids"])
    assert built.memory_bytes == cfg.KERNEL_MEMORY_MB * 2**20 and built.max_processes == cfg.KERNEL_MAX_PROCESSES
    assert built.env == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    assert kernel_sandbox(60001, {}, "/x/ipc", 1).cgroup_controllers == []


def test_kill_user_kills_the_users_processes_but_those_kept_and_no_one_elses():
    """Both sides: a sandbox user's strays die, the kept kernel and another user's process live on."""
    if os.geteuid() != 0:
        pytest.skip("starting processes as other users needs root")
    uid, other = 64999, 64998

    def start(as_uid):
        return subprocess.Popen(["sleep", "60"], user=as_uid, group=as_uid)

    kernel_process, strays, bystander = start(uid), [start(uid), start(uid)], start(other)
    try:
        deadline = time.monotonic() + 5
        while len(processes.user_pids(uid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert processes.user_pids(uid) == {kernel_process.pid, *(p.pid for p in strays)}
        assert processes.kill_user(uid, keep={kernel_process.pid}) == 2
        for stray in strays:
            stray.wait(timeout=5)  # reaped here: a zombie is not counted as alive
        assert processes.user_pids(uid) == {kernel_process.pid}
        assert kernel_process.poll() is None and bystander.poll() is None
        assert processes.kill_user(uid, keep={kernel_process.pid}) == 0  # nothing left to kill: silent
        assert processes.kill_user(uid) == 1
        kernel_process.wait(timeout=5)
        assert bystander.poll() is None
    finally:
        for process in (kernel_process, *strays, bystander):
            process.kill()
            process.wait()
