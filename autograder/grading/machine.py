"""What this machine gives the grader: the device the kernels run on and whether they can be sandboxed."""
from __future__ import annotations

import os
import shutil
import subprocess

import course_config as cfg
from autograder.errors import InputError, SetupError
from autograder.grading.settings import thread_env


def grading_device() -> str:
    """What the kernels will run on, from the device policy and the visible GPUs (an empty
    ``CUDA_VISIBLE_DEVICES``, which kernels inherit, hides them all)."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1")
    if cfg.DEVICE_POLICY == "cpu" or hidden or shutil.which("nvidia-smi") is None:
        return "cpu"
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    gpus = [line.split(" (UUID")[0] for line in listing.stdout.splitlines() if line.startswith("GPU ")]
    return f"cuda ({gpus[0]})" if gpus else "cpu"


def sandbox_mode() -> tuple[bool, str]:
    """(sandbox on?, isolation label) from ``course_config.SANDBOX`` and what this machine permits.

    The label goes into every row's ``isolation`` column: ``sandbox``, or ``NONE: <why>``.
    """
    from autograder.kernel import sandbox

    if cfg.SANDBOX not in ("auto", "require", "off"):
        raise InputError(f"course_config.SANDBOX must be 'auto', 'require' or 'off', not {cfg.SANDBOX!r}")
    if cfg.SANDBOX == "off":
        return False, "NONE: sandbox off in course_config.SANDBOX"
    reason = sandbox.available()
    if reason is None:
        return True, "sandbox"
    if cfg.SANDBOX == "require":
        raise SetupError(f"course_config.SANDBOX is 'require' but {reason}; no submission was graded")
    return False, f"NONE: {reason}"


def kernel_sandbox(uid: int, files: dict[str, str], ipc: str, threads: int, *, cgroup: str | None = None,
                   controllers: list[str] | None = None):
    """The ``SandboxConfig`` of a grading kernel, cold or a zygote's: user ``uid``, this course's limits
    (``course_config``), the Python environment read-only, ``files`` bound read-only, sockets in ``ipc``."""
    from autograder.kernel import sandbox

    return sandbox.SandboxConfig(
        uid=uid, gid=uid, readonly=sandbox.python_environment(), masked=sandbox.hidden_packages(), files=files,
        ipc=ipc, memory_bytes=cfg.KERNEL_MEMORY_MB * 2**20, max_processes=cfg.KERNEL_MAX_PROCESSES,
        scratch_bytes=cfg.KERNEL_SCRATCH_MB * 2**20, cgroup=cgroup, env=thread_env(threads),
        cgroup_controllers=list(controllers or []))
