"""Run a grading kernel as an unprivileged user that can see and touch almost nothing.

The grader registers a kernelspec (``write_kernelspec``) whose command is this module; Jupyter
starts it as root with the kernel's own command line after ``--``. It then

1. (stage 1) moves itself into the submission's memory and process cgroups when the machine
   has writable cgroups, and re-executes itself in a private mount namespace (``unshare``);
2. (stage 2, root inside that namespace) mounts empty file systems over every folder the
   kernel must not read (the course repository, the grading output, the submissions, /tmp,
   /root, /home), binds back read-only what the kernel needs (the Python environment),
   copies the notebook's data into a scratch folder, the only writable place, and
3. drops to the submission's user id with ``setpriv`` (no groups, no capabilities, no new
   privileges) under ``prlimit`` limits on data memory, processes and open files, and
   execs the kernel there.

Network isolation is not done here: the whole grading worker runs in a network namespace with
only loopback (``grade.py``), because the kernel talks to nbgrader over loopback TCP.

    python -m autograder.sandbox CONFIG.json -- python -m ipykernel_launcher -f {connection_file}
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

KERNEL_NAME = "w4-sandbox"
SCRATCH = Path("/tmp/work")  # inside the kernel's private /tmp
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class SandboxConfig:
    uid: int
    gid: int
    hide: list[str]  # folders replaced by an empty read-only tmpfs
    keep: list[str]  # folders inside hidden ones that stay visible, read-only (the venv)
    copy_in: list[str]  # folders copied into the scratch folder (the notebook's data)
    memory_bytes: int
    max_processes: int
    cgroup: str | None = None  # name under memory/ and pids/ when cgroups are writable
    env: dict[str, str] = field(default_factory=dict)

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def read(cls, path: Path) -> "SandboxConfig":
        return cls(**json.loads(Path(path).read_text()))


def available() -> str | None:
    """None when this machine can sandbox kernels, else the reason it cannot."""
    if os.geteuid() != 0:
        return "the grader does not run as root (needed for namespaces and setpriv)"
    for tool in ("unshare", "setpriv", "prlimit", "mount", "ip"):
        if shutil.which(tool) is None:
            return f"the command {tool!r} is missing"
    probe = subprocess.run(["unshare", "--net", "--mount", "--", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare is not permitted here ({probe.stderr.strip() or probe.returncode})"
    return None


def cgroups_writable() -> bool:
    return all(os.access(CGROUP_ROOT / c, os.W_OK) for c in ("memory", "pids"))


def create_cgroup(name: str, memory_bytes: int, max_processes: int) -> None:
    """Create ``memory/<name>`` and ``pids/<name>`` with their limits (cgroup v1)."""
    memory, pids = CGROUP_ROOT / "memory" / name, CGROUP_ROOT / "pids" / name
    memory.mkdir(parents=True, exist_ok=True)
    pids.mkdir(parents=True, exist_ok=True)
    (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
    swap = memory / "memory.memsw.limit_in_bytes"
    if swap.exists():
        swap.write_text(str(memory_bytes))
    (pids / "pids.max").write_text(str(max_processes))


def remove_cgroup(name: str) -> None:
    """Kill what is left in the cgroup and remove it; quiet when it does not exist."""
    for controller in ("memory", "pids"):
        path = CGROUP_ROOT / controller / name
        if not path.exists():
            continue
        for pid in (path / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        try:
            path.rmdir()
        except OSError:
            pass  # a process still exiting; the next run's cleanup removes it


LOCK_DIR = Path("/run/lock/w4-sandbox") if Path("/run/lock").is_dir() else Path("/tmp/w4-sandbox-locks")


def reserve_uids(count: int, base: int, span: int = 1000) -> list:
    """Reserve ``count`` kernel user ids no other grading run on this machine holds.

    Each id is held by an exclusive ``flock`` on a file, for as long as the returned handles
    live: two runs at once (shards on one host) never share a user, so neither kills the
    other's kernels when it cleans up. Returns [(uid, open file)].
    """
    import fcntl

    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    held = []
    for uid in range(base, base + span):
        handle = open(LOCK_DIR / f"{uid}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        held.append((uid, handle))
        if len(held) == count:
            return held
    raise RuntimeError(f"no free sandbox user ids in {base}..{base + span - 1} ({LOCK_DIR})")


def kill_user(uid: int, patience_s: float = 10.0) -> None:
    """Kill every process of the sandbox user (a fork bomb's leftovers), until none is left.

    One ``pkill`` pass can miss children forked while it scans, so it repeats until
    ``pgrep`` finds nothing.
    """
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        subprocess.run(["pkill", "-9", "-U", str(uid)], capture_output=True)
        if subprocess.run(["pgrep", "-U", str(uid)], capture_output=True).returncode != 0:
            return
        time.sleep(0.05)


def write_kernelspec(folder: Path, config_path: Path) -> Path:
    """Register the sandboxed kernel under ``folder/kernels``; add ``folder`` to JUPYTER_PATH."""
    spec_dir = folder / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    repo = str(Path(__file__).resolve().parents[1])
    spec = {
        "argv": [sys.executable, "-m", "autograder.sandbox", str(config_path), "--",
                 sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (sandboxed grading kernel)",
        "language": "python",
        "env": {"PYTHONPATH": repo},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def _connection_file(argv: list[str]) -> int:
    return argv.index("-f") + 1


# the only variables a kernel inherits: the grader's own environment (tokens, paths) stays out
INHERITED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
             "NVIDIA_DRIVER_CAPABILITIES", "LD_LIBRARY_PATH", "NBGRADER_EXECUTION", "NBGRADER_VALIDATING",
             "MPLBACKEND", "JPY_PARENT_PID")


def kernel_environment(config: SandboxConfig) -> dict[str, str]:
    """The kernel's environment: an allowlist, with every cache and temp path in the scratch folder."""
    env = {k: v for k, v in os.environ.items() if k in INHERITED}
    cache = SCRATCH / ".cache"
    env.update({"HOME": str(SCRATCH), "TMPDIR": str(SCRATCH), "USER": "student", "LOGNAME": "student",
                "XDG_CACHE_HOME": str(cache), "MPLCONFIGDIR": str(cache / "matplotlib"),
                "TORCHINDUCTOR_CACHE_DIR": str(cache / "torchinductor"), "PYTHONDONTWRITEBYTECODE": "1",
                **config.env})
    return env


def stage1(config_path: Path, kernel_argv: list[str]) -> None:
    config = SandboxConfig.read(config_path)
    if config.cgroup:
        for controller in ("memory", "pids"):
            (CGROUP_ROOT / controller / config.cgroup / "cgroup.procs").write_text(str(os.getpid()))
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "--",
                          sys.executable, "-m", "autograder.sandbox", "--stage2", str(config_path), "--", *kernel_argv])


def stage2(config_path: Path, kernel_argv: list[str]) -> None:
    config = SandboxConfig.read(config_path)
    index = _connection_file(kernel_argv)
    connection = Path(kernel_argv[index]).read_bytes()
    copies = [(Path(p), Path(p).name) for p in config.copy_in if Path(p).is_dir()]
    staged = Path("/run/w4-sandbox-copy")
    # stage what the kernel needs before hiding its origin
    _mount("-t", "tmpfs", "-o", "mode=0755,size=512m", "tmpfs", "/run")
    staged.mkdir()
    for source, name in copies:
        shutil.copytree(source, staged / name)
    keeps = []
    for n, keep in enumerate(config.keep):
        holder = Path(f"/run/w4-keep-{n}")
        holder.mkdir()
        _mount("--bind", keep, str(holder))
        keeps.append((holder, keep))
    _mount("-t", "tmpfs", "-o", "mode=0755,size=1g", "tmpfs", "/tmp")
    for hidden in config.hide:
        if Path(hidden).is_dir() and hidden != "/tmp":
            _mount("-t", "tmpfs", "-o", "mode=0755,size=1m", "tmpfs", hidden)
    for holder, keep in keeps:
        Path(keep).mkdir(parents=True, exist_ok=True)
        _mount("--bind", str(holder), keep)
        _mount("-o", "remount,bind,ro", keep)
    SCRATCH.mkdir(mode=0o700)
    for _, name in copies:
        shutil.copytree(staged / name, SCRATCH / name)
    (SCRATCH / "kernel.json").write_bytes(connection)
    for path in [SCRATCH, *SCRATCH.rglob("*")]:
        os.chown(path, config.uid, config.gid)
    _mount("-t", "tmpfs", "-o", "mode=0755,size=1m", "tmpfs", "/run")  # drop the staging copies
    kernel_argv[index] = str(SCRATCH / "kernel.json")
    for hidden in ["/tmp", *config.hide]:
        if Path(hidden).is_dir() and not os.path.ismount(hidden):
            raise RuntimeError(f"sandbox: {hidden} is not hidden; refusing to start the kernel")
    env = kernel_environment(config)
    os.chdir(SCRATCH)
    os.execvpe("setpriv", [
        "setpriv", f"--reuid={config.uid}", f"--regid={config.gid}", "--clear-groups", "--no-new-privs",
        "--inh-caps=-all", "--bounding-set=-all", "--",
        "prlimit", f"--data={config.memory_bytes}", f"--nproc={config.max_processes}", "--nofile=1024",
        "--core=0", "--", *kernel_argv], env)


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--kill":  # python -m autograder.sandbox --kill UID
        kill_user(int(argv[1]))
        return
    stage = stage1
    if argv and argv[0] == "--stage2":
        stage, argv = stage2, argv[1:]
    split = argv.index("--")
    stage(Path(argv[0]), argv[split + 1:])


if __name__ == "__main__":
    main(sys.argv[1:])
