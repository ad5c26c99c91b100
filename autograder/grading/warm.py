"""The grader's side of warm kernels: one zygote (``autograder/kernel/zygote.py``) per worker slot.

``Grader`` starts a ``Zygote`` per slot when ``course_config.WARM_KERNELS`` is on: inside the
slot's sandbox (bubblewrap, the kernels' own allow-listed root; the zygote file alone is bound in,
never the course repository) or, when kernels are not sandboxed, as a plain process. A worker then
registers the kernelspec of ``launcher_kernelspec``, whose command asks the slot's zygote for a
kernel; nbgrader and jupyter_client see an ordinary local kernel.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import course_config as cfg
from autograder.errors import SetupError
from autograder.kernel import sandbox, zygote
from autograder.grading.machine import kernel_sandbox
from autograder.grading.settings import thread_env

ZYGOTE_FILE = Path(zygote.__file__).resolve()
READY = "zygote ready"  # the zygote's first line once the stack is imported


class ZygoteFailure(SetupError):
    """A zygote did not start: a fault of the grader or the machine, never of a student."""


@dataclass
class ZygoteInfo:
    """What a worker needs to launch kernels from a slot's zygote (travels in the Task)."""
    socket: str  # the zygote's Unix socket (host path)
    pid: int  # the zygote's host pid (its children are found under it)
    ipc: str  # host folder bound at sandbox.IPC_DIR ("" when not sandboxed)
    isolate: bool  # the zygote runs in the sandbox and each child isolates itself


class Zygote:
    """A zygote for one slot: ``start()``, then ``info`` for the workers, ``alive()``, ``stop()``."""

    def __init__(self, uid: int | None, course: Path, threads: int, log: Path):
        self.uid, self.course, self.threads, self.log = uid, Path(course), threads, Path(log)
        # short: Unix socket paths are limited to 107 bytes
        self.folder = Path(tempfile.mkdtemp(prefix="w4z-", dir="/tmp" if os.path.isdir("/tmp") else None))
        self.process: subprocess.Popen | None = None
        self.info: ZygoteInfo | None = None
        self.ipc = ""

    def start(self, timeout: float = 300.0) -> ZygoteInfo:
        """Start the zygote and wait until it has imported the stack; ``ZygoteFailure`` saying why."""
        if self.process is None:
            self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the zygote's process; it imports while the caller does other work (``wait_ready``)."""
        isolate = self.uid is not None
        code = self.folder / "zygote.py"
        shutil.copyfile(ZYGOTE_FILE, code)
        settings = {"threads": self.threads, "home": sandbox.HOME, "isolate": isolate,
                    "scratch_bytes": cfg.KERNEL_SCRATCH_MB * 2**20}
        (self.folder / "config.json").write_text(json.dumps(settings))
        if isolate:
            ipc = self.folder / "ipc"
            ipc.mkdir(mode=0o755)  # root's: each kernel gets a folder of its own inside, removed after it
            config = self.sandbox_config(str(ipc))
            inside = zygote.ZYGOTE_DIR
            argv = sandbox.zygote_argv(config, str(self.folder), [
                sys.executable, f"{inside}/zygote.py", "serve", f"{inside}/zygote.sock", f"{inside}/config.json"])
            env = sandbox.kernel_environment(config)
        else:
            ipc = None
            argv = [sys.executable, str(code), "serve", str(self.folder / "zygote.sock"), str(self.folder / "config.json")]
            env = {**os.environ, **thread_env(self.threads)}
        self.ipc = str(ipc or "")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout: float = 300.0) -> ZygoteInfo:
        """Wait until the launched zygote has imported the stack; ``ZygoteFailure`` saying why."""
        if self.info is not None:
            return self.info
        deadline = time.monotonic() + timeout
        while READY not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
                raise ZygoteFailure(f"the warm-kernel zygote did not start ({' | '.join(tail) or 'no output'}); "
                                    f"its log: {self.log}")
            time.sleep(0.05)
        isolate = self.uid is not None
        pid = self.process.pid if not isolate else self.find_pid()
        self.info = ZygoteInfo(str(self.folder / "zygote.sock"), pid, self.ipc, isolate)
        return self.info

    def sandbox_config(self, ipc: str) -> sandbox.SandboxConfig:
        """The slot's sandbox: the kernels' allow-listed root, with the notebook's files at
        ``zygote.COURSE_DIR`` (each child links them into its fresh home)."""
        files = {f"{zygote.COURSE_DIR}/{name}": str(self.course / name) for name in ("data", "figures")
                 if (self.course / name).is_dir()}
        files.update(sandbox.user_files(self.folder, self.uid))
        return kernel_sandbox(self.uid, files, ipc, self.threads)

    def find_pid(self) -> int:
        """The host pid of the zygote's Python (bwrap's descendant running ``serve``)."""
        import psutil

        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if "serve" in child.cmdline():
                    return child.pid
            except psutil.Error:
                continue
        raise ZygoteFailure(f"the zygote's process was not found under bwrap (pid {self.process.pid})")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def launcher_kernelspec(folder: Path, info: ZygoteInfo, launch_config: Path) -> Path:
    """Register, under ``folder/kernels``, the kernel that ``info``'s zygote forks (same name as the
    sandboxed kernel: the worker's settings do not change)."""
    spec_dir = folder / "kernels" / sandbox.KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        # -S: the launcher needs the standard library only, and starts in milliseconds
        "argv": [sys.executable, "-S", str(ZYGOTE_FILE), "launch", info.socket, str(launch_config), "{connection_file}"],
        "display_name": "Python 3 (warm grading kernel)",
        "language": "python",
        "interrupt_mode": "message",  # a signal would reach the launcher, not the kernel
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


def launch_config(path: Path, info: ZygoteInfo, config: sandbox.SandboxConfig | None, ipc: str) -> Path:
    """What the launcher hands the zygote for each kernel of this submission."""
    settings: dict = {"isolate": info.isolate, "zygote_pid": info.pid, "ipc": ipc, "ipc_inside": sandbox.IPC_DIR}
    if config is not None:
        # the variables of sandbox.INHERITED are read again at launch: nbgrader sets some just before
        settings.update(uid=config.uid, gid=config.gid, env=sandbox.kernel_environment(config),
                        inherit=list(sandbox.INHERITED), cgroup=config.cgroup,
                        cgroup_controllers=config.cgroup_controllers,
                        limits={"RLIMIT_DATA": config.memory_bytes, "RLIMIT_NPROC": config.max_processes,
                                "RLIMIT_NOFILE": 1024, "RLIMIT_CORE": 0})
    else:
        settings.update(uid=None, gid=None, env=None, cgroup=None, limits={})
    path.write_text(json.dumps(settings))
    return path
