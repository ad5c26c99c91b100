"""What this machine gives the grader, and whether the reference earns full marks on it.

Prints one line per fact (sandbox on or off and why, user ids, cgroups, network namespace,
GPU and CUDA, library versions, free memory and disk, the cell time limit against the
reference's slowest cell measured here), then runs the canary: the reference solution graded
in the very sandbox and device a batch would use. Exits 1 when the canary fails.

    python -m autograder doctor [--out DIR]
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import course_config as cfg


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "NOT INSTALLED"


def _memory_available_gb() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GB"
    except OSError:
        pass
    return "unknown"


def _kernel_uids() -> str:
    """Where the kernels' user ids come from, and whether this run shares its locks with the host's."""
    from autograder.kernel import sandbox

    first = sandbox.first_uid(cfg.SANDBOX_UID_BASE)
    where = (f"a range of this container's own ({sandbox.LOCK_DIR} is not the host's: mount it to share the "
             "host's locks)" if first != cfg.SANDBOX_UID_BASE else f"locked in {sandbox.LOCK_DIR}")
    return f"from {first}, one per worker, {where}; an id some process runs as, a container's too, is passed over"


def _gpu() -> str:
    import torch

    if cfg.DEVICE_POLICY == "cpu":
        return "not used (course_config.DEVICE_POLICY = 'cpu')"
    if not torch.cuda.is_available():
        return f"none (torch {torch.__version__}, built for CUDA {torch.version.cuda or '-'}: no usable GPU)"
    return (f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}, {torch.cuda.device_count()} device(s), "
            f"torch {torch.__version__})")


def facts(out: Path) -> list[tuple[str, str]]:
    """(label, value) pairs describing this machine as the grader sees it; runs no kernel."""
    from autograder.kernel import sandbox
    from autograder.grading.grade import grading_device, sandbox_mode

    try:
        sandboxed, isolation = sandbox_mode()
    except RuntimeError as error:  # SANDBOX = "require" on a machine that cannot
        sandboxed, isolation = False, f"REFUSED: {error}"
    bwrap = shutil.which("bwrap")
    bwrap_version = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip() if bwrap \
        else f"missing ({sandbox.INSTALL_HINT})"
    usage = shutil.disk_usage(out if out.exists() else out.parent)
    rows = [
        ("machine", f"{platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} cores, "
                    f"Python {platform.python_version()} ({sys.executable})"),
        ("sandbox", "ON: kernels run under bubblewrap as their own user, no network, allow-listed files"
                    if sandboxed else f"OFF ({cfg.SANDBOX=}): {isolation}"),
        ("bubblewrap", bwrap_version),
        ("grader user", f"uid {os.geteuid()}" + (" (root)" if os.geteuid() == 0 else " (not root: no sandbox)")),
        ("kernel user ids", _kernel_uids()),
        ("cgroups", ("v1 memory and pids writable: per-kernel memory and process limits, each worker's memory"
                     + (", per-kernel CPU share" if sandbox.cpu_cgroup_writable() else " (no CPU share: cpu not writable)"))
         if sandbox.cgroups_writable() else "not writable: prlimit limits only (data memory, processes)"),
        ("network namespace", "yes: the kernel has loopback only" if sandboxed else "no (the sandbox is off)"),
        ("device policy", f"{cfg.DEVICE_POLICY}: kernels run on {grading_device()}"),
        ("GPU", _gpu()),
        ("versions", ", ".join(f"{p} {_version(p)}" for p in ("torch", "torchvision", "nbgrader", "nbclient",
                                                              "ipykernel", "jupyter_client"))),
        ("memory available", f"{_memory_available_gb()} (a kernel may use {cfg.KERNEL_MEMORY_MB} MB)"),
        ("disk free", f"{usage.free / 2**30:.1f} GB under {out}"),
    ]
    return rows


def run_doctor(out: Path | None = None) -> tuple[bool, str]:
    """Print-ready report of this machine and the canary; (canary passed, report)."""
    from autograder.grading.grade import CanaryFailed, Grader

    scratch = None
    if out is None:
        scratch = tempfile.TemporaryDirectory(prefix="w4-doctor-")
        out = Path(scratch.name)
    out = Path(out)
    lines = [f"{label:<18} {value}" for label, value in facts(out)]
    grader = None
    try:
        grader = Grader(out, warm=cfg.WARM_KERNELS)
        if cfg.WARM_KERNELS:
            started = time.perf_counter()
            grader.start_zygotes()
            ready = grader.zygotes
            lines.append(f"{'warm kernels':<18} " + (
                f"ON: the zygote imported the notebook's stack in {time.perf_counter() - started:.1f} s; each kernel "
                f"is a fork of it ({'isolated in the sandbox' if grader.sandboxed else 'not sandboxed'})" if ready else
                f"OFF: the zygote did not start, kernels start cold; see {grader.root}/zygote-0.log"))
        else:
            lines.append(f"{'warm kernels':<18} OFF (course_config.WARM_KERNELS): every kernel starts cold")
        canary = grader.run_canary()
        slow_id, slow_s = canary.slowest()
        limit = canary.cell_timeouts().get(slow_id, cfg.CELL_TIMEOUT_S)
        lines.append(f"{'cell time limit':<18} {cfg.CELL_TIMEOUT_S} s (course_config.CELL_TIMEOUT_S), or "
                     f"{cfg.TIMEOUT_SCALE}x the reference's time per cell if longer; slowest reference cell here: "
                     f"{slow_id} {slow_s:.1f} s (limit {limit:.0f} s)")
        lines.append(f"{'canary':<18} PASS: the reference earned {canary.row.score:g}/{canary.row.max_score:g} "
                     f"in {canary.row.seconds:.1f} s ({grader.isolation}, {grader.device})")
        ok = True
    except (CanaryFailed, RuntimeError, OSError) as error:
        lines.append(f"{'canary':<18} FAIL: {error}")
        ok = False
    finally:
        if grader is not None:
            grader.close()
        if scratch is not None:
            scratch.cleanup()
    return ok, "\n".join(lines)
