"""Run a grading kernel in a file system built from an allow-list, as a user of its own.

The grader registers a kernelspec (``write_kernelspec``) whose command is this module; Jupyter
starts it as root with the kernel's own command line after ``--``. It then

1. moves itself into the submission's memory, process and CPU cgroups when the machine has
   writable cgroups (v1);
2. execs bubblewrap (``bwrap``, the sandbox Flatpak relies on) which builds a new root from
   nothing: the system's ``/usr`` and the Python environment read-only, a few files of
   ``/etc``, the notebook's data and figures read-only, a private ``/dev`` and ``/proc``, and
   two small writable tmpfs (the kernel's home and ``/tmp``). Nothing else exists in there,
   wherever the course repository, the submissions or the output lie. The kernel gets new
   pid, network (loopback only), IPC, UTS and cgroup namespaces and dies with its parent;
3. inside, ``setpriv`` drops to the submission's user id (no groups, no capabilities, no new
   privileges) and ``prlimit`` caps data memory, processes and open files, then the kernel runs.

The kernel has no network at all, so it talks to the grader over Unix sockets (Jupyter's
``ipc`` transport) in a folder bound into the sandbox at ``IPC_DIR``. No user namespace is
used: bwrap runs as root so that it can read a Python environment under ``/root`` or a home
folder, and the kernel's processes keep a real, unprivileged user id of their own on the host
(their limits count there, and the grader can kill every one of them).

    python -m autograder.kernel.sandbox CONFIG.json -- python -m ipykernel_launcher -f {connection_file}
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder.kernel.zygote import sandboxed_connection

KERNEL_NAME = "w4-sandbox"
HOME = "/home/student"  # the kernel's working folder: the notebook's data and figures, read-only, inside
IPC_DIR = "/run/kernel"  # where the kernel's sockets and connection file are, inside the sandbox
CGROUP_ROOT = Path("/sys/fs/cgroup")
TOOLS = ("bwrap", "setpriv", "prlimit")
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and util-linux"
# the only parts of /etc a Python kernel needs: the dynamic loader's cache, time zone, alternatives
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives")
NAMESPACES = ("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try")
# capabilities setpriv needs to become the kernel's user; setpriv then drops every one of them
SETPRIV_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")


@dataclass
class SandboxConfig:
    uid: int
    gid: int
    readonly: list[str]  # host folders bound read-only at the same path (the Python environment)
    masked: list[str]  # folders inside those, replaced by an empty tmpfs (nbgrader's own test notebooks)
    files: dict[str, str]  # sandbox path -> host path, bound read-only (data, figures, passwd)
    ipc: str  # host folder for the kernel's sockets, owned by the kernel's user
    memory_bytes: int
    max_processes: int
    scratch_bytes: int  # size of the kernel's home and of its /tmp (memory, counted by the cgroup)
    cgroup: str | None = None  # name under each of cgroup_controllers/ when cgroups are writable
    env: dict[str, str] = field(default_factory=dict)
    cgroup_controllers: list[str] = field(default_factory=list)  # the ones the kernel joins

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def read(cls, path: Path) -> "SandboxConfig":
        return cls(**json.loads(Path(path).read_text()))


def site_folders() -> set[str]:
    """The grader's site-packages folders, both paths of each (a venv may borrow another's through
    a .pth file or a symlink); never the course repository, which is on the grader's own path."""
    folders = {p for p in sys.path if p and os.path.isdir(p) and os.path.basename(p) in ("site-packages", "dist-packages")}
    folders.add(sysconfig.get_paths()["purelib"])
    return {q for p in folders for q in (p, os.path.realpath(p))}


def python_environment() -> list[str]:
    """Folders the kernel's Python needs read-only: the venv, its base interpreter, their site
    folders, their real paths."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths |= {os.path.realpath(p) for p in paths}
    paths |= {os.path.dirname(os.path.realpath(sys.executable))}
    paths |= site_folders()
    paths = {p for p in paths if not _inside(p, ["/usr"])}
    return sorted(p for p in paths if not _inside(p, [q for q in paths if q != p]))


def hidden_packages() -> list[str]:
    """Installed packages the kernel does not need and must not read: nbgrader ships notebooks
    and gradebooks of its own tests (which a probe for course files would otherwise find)."""
    return sorted(str(Path(site) / name) for site in site_folders() for name in ("nbgrader",)
                  if (Path(site) / name).is_dir())


def gpu_devices() -> list[str]:
    """NVIDIA device nodes to pass through (none on a machine without a GPU)."""
    return sorted(glob.glob("/dev/nvidia*") + glob.glob("/dev/nvidia-caps/*"))


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[:n]) for n in range(1, len(parts) + 1)]


def _inside(path: str, folders: list[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def bwrap_argv(config: SandboxConfig, command: list[str]) -> list[str]:
    """The bwrap command line that runs ``command`` as the kernel's user in the allow-listed root."""
    argv = allow_listed_root(config, SETPRIV_CAPS)
    argv += ["setpriv", f"--reuid={config.uid}", f"--regid={config.gid}", "--clear-groups", "--no-new-privs",
             "--inh-caps=-all", "--bounding-set=-all", "--",
             "prlimit", f"--data={config.memory_bytes}", f"--nproc={config.max_processes}", "--nofile=1024",
             "--core=0", "--", *command]
    return argv


def zygote_argv(config: SandboxConfig, zygote_dir: str, command: list[str]) -> list[str]:
    """The bwrap command line of a warm-kernel zygote (``autograder/kernel/zygote.py``): the kernels' very
    root, its own folder at ``ZYGOTE_DIR``, and the capabilities each child needs to unshare, mount its
    scratch and drop to the kernel's user (which takes every capability away before student code)."""
    from autograder.kernel.zygote import ZYGOTE_DIR

    argv = allow_listed_root(config, ZYGOTE_CAPS, binds={zygote_dir: ZYGOTE_DIR})
    return argv + command


# what a zygote keeps (autograder/kernel/zygote.py): each child unshares and mounts (SYS_ADMIN), writes its
# scratch (DAC_OVERRIDE, FOWNER, CHOWN), drops to the kernel's user (SETUID, SETGID, SETPCAP) and is
# killed by it (KILL)
ZYGOTE_CAPS = ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_KILL", "CAP_DAC_OVERRIDE",
               "CAP_FOWNER", "CAP_CHOWN")


def allow_listed_root(config: SandboxConfig, caps: tuple[str, ...], binds: dict[str, str] | None = None) -> list[str]:
    """bwrap's options up to ``--``: namespaces, ``caps``, and the allow-listed file system with
    ``binds`` (host folder -> sandbox path, writable) added."""
    argv = ["bwrap", *NAMESPACES, "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    for cap in caps:
        argv += ["--cap-add", cap]
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    for name in ETC_FILES:
        argv += ["--ro-bind-try", name, name]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    devices = gpu_devices()
    for device in devices:
        argv += ["--dev-bind", device, device]
    if devices:  # the CUDA driver reads the PCI topology
        argv += ["--ro-bind-try", "/sys", "/sys"]
    size = str(config.scratch_bytes)
    # the writable tmpfs first, so that binds below them (a venv under /tmp) stay visible
    argv += ["--perms", "01777", "--size", size, "--tmpfs", "/tmp", "--perms", "0755", "--dir", str(Path(HOME).parent),
             "--perms", "0777", "--size", size, "--tmpfs", HOME]
    # parents of the other targets exist and are open to all (bwrap would copy /root's 0700)
    made = {"/usr", "/proc", "/dev", "/sys", "/etc", "/tmp", str(Path(HOME).parent), HOME}
    binds = binds or {}
    targets = [*config.readonly, IPC_DIR, *binds.values(), *(t for t in config.files if not t.startswith("/etc/"))]
    for parent in sorted({p for t in targets for p in _parents(t)}, key=lambda p: (p.count("/"), p)):
        if parent not in made and not _inside(parent, config.readonly):
            argv += ["--perms", "0755", "--dir", parent]
            made.add(parent)
    for folder in config.readonly:
        argv += ["--ro-bind", folder, folder]
    for folder in config.masked:
        argv += ["--tmpfs", folder, "--remount-ro", folder]
    for target, source in sorted(config.files.items()):
        argv += ["--ro-bind", source, target]
    argv += ["--bind", config.ipc, IPC_DIR]
    for source, target in sorted(binds.items()):
        argv += ["--bind", source, target]
    return argv + ["--chdir", HOME, "--"]


def available() -> str | None:
    """None when this machine can sandbox kernels, else the reason it cannot (with the fix)."""
    if not sys.platform.startswith("linux"):
        return f"kernels are sandboxed on Linux only, not {sys.platform}"
    if os.geteuid() != 0:
        return "the grader does not run as root (bubblewrap needs it to switch the kernel to its own user)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"the command(s) {', '.join(missing)} are missing: {INSTALL_HINT}"
    probe = subprocess.run(["bwrap", *NAMESPACES, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--",
                            "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"bubblewrap cannot create namespaces here ({probe.stderr.strip() or probe.returncode})"
    return None


def user_files(folder: Path, uid: int) -> dict[str, str]:
    """Write a ``passwd`` and ``group`` naming root and the kernel's user into ``folder``; return the
    sandbox's ``/etc`` paths -> those files (for ``SandboxConfig.files``)."""
    (folder / "passwd").write_text(f"root:x:0:0::/:/usr/sbin/nologin\nstudent:x:{uid}:{uid}::{HOME}:/bin/sh\n")
    (folder / "group").write_text(f"root:x:0:\nstudent:x:{uid}:\n")
    return {"/etc/passwd": str(folder / "passwd"), "/etc/group": str(folder / "group")}


def cgroups_writable() -> bool:
    return all(os.access(CGROUP_ROOT / c, os.W_OK) for c in ("memory", "pids"))


def cpu_cgroup_writable() -> bool:
    return os.access(CGROUP_ROOT / "cpu", os.W_OK) and (CGROUP_ROOT / "cpu" / "cpu.cfs_quota_us").exists()


CFS_PERIOD_US = 100_000


def create_cgroup(name: str, memory_bytes: int, max_processes: int | None = None, cpus: float | None = None) -> list[str]:
    """Create ``memory/<name>`` (and ``pids/<name>``, ``cpu/<name>`` when asked and writable) with their
    limits (cgroup v1); return the controllers made. ``cpus``: a CPU share (1.0 = one core's time)."""
    made = ["memory"]
    memory = CGROUP_ROOT / "memory" / name
    memory.mkdir(parents=True, exist_ok=True)
    (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
    swap = memory / "memory.memsw.limit_in_bytes"
    if swap.exists():
        swap.write_text(str(memory_bytes))
    if max_processes is not None:
        pids = CGROUP_ROOT / "pids" / name
        pids.mkdir(parents=True, exist_ok=True)
        (pids / "pids.max").write_text(str(max_processes))
        made.append("pids")
    if cpus is not None and cpu_cgroup_writable():
        cpu = CGROUP_ROOT / "cpu" / name
        cpu.mkdir(parents=True, exist_ok=True)
        (cpu / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(max(1000, int(cpus * CFS_PERIOD_US))))
        made.append("cpu")
    return made


def join_cgroup(name: str, controllers: list[str], pid: int | None = None) -> None:
    """Move ``pid`` (default: this process) into ``<controller>/<name>`` for each controller."""
    for controller in controllers:
        (CGROUP_ROOT / controller / name / "cgroup.procs").write_text(str(pid or os.getpid()))


def oom_killed(name: str) -> bool:
    """Whether the kernel's OOM killer killed a process of ``memory/<name>``."""
    try:
        control = (CGROUP_ROOT / "memory" / name / "memory.oom_control").read_text()
    except OSError:
        return False
    counts = dict(line.split() for line in control.splitlines() if len(line.split()) == 2)
    return int(counts.get("oom_kill", 0)) > 0


def remove_cgroup(name: str) -> None:
    """Kill what is left in the cgroup and remove it; quiet when it does not exist."""
    for controller in ("memory", "pids", "cpu"):
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
    other's kernels when it cleans up. An id that some process runs as is passed over too
    (``uid_in_use``): a run whose locks are elsewhere holds it, a container run as root beside
    the host's runs or beside another container. Returns [(uid, open file)].
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
        if uid_in_use(uid):  # unlocked but taken: a run that locks elsewhere (a container's), or a leftover
            handle.close()
            continue
        held.append((uid, handle))
        if len(held) == count:
            return held
    raise RuntimeError(f"no free sandbox user ids in {base}..{base + span - 1} ({LOCK_DIR})")


def uid_in_use(uid: int) -> bool:
    """Whether any process on this machine runs as ``uid``, in this pid namespace or another.

    Containers that share the host's user ids (run as root, no user namespace) see only their own
    processes in ``/proc``, but the kernel counts every process of a user against its process
    limit, whatever the namespace: as ``uid``, with that limit at 2, a process can fork only when
    it is the user's one process. ``RuntimeError`` if the probe itself cannot run (not root).
    """
    # coreutils' timeout forks once and says "fork system call failed"; a shell may retry for 15 s (bash)
    probe = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
                            "prlimit", "--nproc=2", "--", "timeout", "10", "true"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if probe.returncode == 0:
        return False
    if "fork" in probe.stderr.lower():
        return True
    raise RuntimeError(f"cannot tell whether user id {uid} is in use: {probe.stderr.strip() or probe.returncode}")


def in_container() -> bool:
    """Whether this process runs in a container: podman's or docker's marker file, or a container
    engine's cgroup (Kubernetes, containerd)."""
    if os.path.exists("/run/.containerenv") or os.path.exists("/.dockerenv"):
        return True
    try:
        cgroups = Path("/proc/1/cgroup").read_text()
    except OSError:
        return False
    return any(engine in cgroups for engine in ("libpod", "docker", "kubepods", "containerd"))


def mounts() -> dict[str, str]:
    """Mount point -> its line of ``/proc/self/mountinfo`` (the 5th field; odd characters octal-escaped)."""
    with open("/proc/self/mountinfo") as mountinfo:
        lines = [line.rstrip("\n") for line in mountinfo]
    return {line.split()[4].encode().decode("unicode_escape"): line for line in lines if len(line.split()) > 4}


def mapped_ids(uid_map: str | None = None) -> list[tuple[int, int]]:
    """The user ids this user namespace can switch to, as ``[(first, end)]`` (``/proc/self/uid_map``):
    every id on a host; about 65,536 in a rootless or user-namespaced container."""
    if uid_map is None:
        try:
            uid_map = Path("/proc/self/uid_map").read_text()
        except OSError:
            return [(0, 2**32 - 1)]
    lines = [line.split() for line in uid_map.splitlines()]
    return [(int(fields[0]), int(fields[0]) + int(fields[2])) for fields in lines if len(fields) == 3]


def first_uid(base: int, span: int = 1000, ranges: int = 999) -> int:
    """Where this run's kernel user ids start: ``base``, or, in a container whose ``LOCK_DIR`` is
    its own, a range of ``span`` ids of its own past it.

    The locks in ``LOCK_DIR`` keep the runs that share it apart. A container run as root gives its
    kernels the host's user ids but locks them in its own folder, where neither the host's runs
    nor other containers' see them: ``uid_in_use`` sees their kernels, not the ids they reserved
    and will use. Such a container takes one of ``ranges`` ranges, picked by its host name and
    root file system (each container's own), so two runs share ids only if they pick the same
    range (1 in ``ranges``) and none was running a kernel when the other reserved. Mounting the
    host's ``LOCK_DIR`` at the same path makes it exact: then the range is ``base``'s, locked with
    the host's runs. Only ranges this user namespace maps are taken (``mapped_ids``): a rootless
    container has a few past ``base``, or none, and then ``base``'s.
    """
    if not in_container():
        return base
    points = mounts()
    if str(LOCK_DIR) in points:
        return base
    import hashlib
    import socket

    end = next((end for first, end in mapped_ids() if first <= base < end), base)
    ranges = min(ranges, (end - base) // span - 1)  # the ranges past base's own that are mapped whole
    if ranges < 1:
        return base
    identity = f"{socket.gethostname()}\n{points.get('/', '')}".encode()
    return base + span * (1 + int(hashlib.sha256(identity).hexdigest(), 16) % ranges)


def write_kernelspec(folder: Path, config_path: Path) -> Path:
    """Register the sandboxed kernel under ``folder/kernels``; add ``folder`` to JUPYTER_PATH.

    Interrupts go as messages: a SIGINT to the process group would reach bwrap, not the kernel.
    """
    spec_dir = folder / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    repo = str(Path(__file__).resolve().parents[2])
    spec = {
        "argv": [sys.executable, "-m", "autograder.kernel.sandbox", str(config_path), "--",
                 sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (sandboxed grading kernel)",
        "language": "python",
        "interrupt_mode": "message",
        "env": {"PYTHONPATH": repo},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


# the only variables a kernel inherits: the grader's own environment (tokens, paths) stays out
INHERITED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
             "NVIDIA_DRIVER_CAPABILITIES", "LD_LIBRARY_PATH", "NBGRADER_EXECUTION", "NBGRADER_VALIDATING",
             "MPLBACKEND")  # not JPY_PARENT_PID: in its pid namespace the kernel cannot see its parent


def kernel_environment(config: SandboxConfig) -> dict[str, str]:
    """The kernel's environment: an allowlist, with every cache and temp path in its own tmpfs."""
    env = {k: v for k, v in os.environ.items() if k in INHERITED}
    cache = f"{HOME}/.cache"
    env.update({"HOME": HOME, "TMPDIR": "/tmp", "USER": "student", "LOGNAME": "student",
                "XDG_CACHE_HOME": cache, "MPLCONFIGDIR": f"{cache}/matplotlib",
                "TORCHINDUCTOR_CACHE_DIR": f"{cache}/torchinductor", "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONNOUSERSITE": "1", **config.env})
    return env


def launch(config_path: Path, kernel_argv: list[str]) -> None:
    """Join the cgroups, hand the kernel its connection file, and exec bwrap (never returns)."""
    config = SandboxConfig.read(config_path)
    if config.cgroup:
        join_cgroup(config.cgroup, config.cgroup_controllers)
    index = kernel_argv.index("-f") + 1
    kernel_argv[index] = sandboxed_connection(kernel_argv[index], config.ipc, IPC_DIR, config.uid, config.gid,
                                              "connection.json")
    os.execvpe("bwrap", bwrap_argv(config, kernel_argv), kernel_environment(config))


def main(argv: list[str]) -> None:
    split = argv.index("--")
    launch(Path(argv[0]), argv[split + 1:])


if __name__ == "__main__":
    main(sys.argv[1:])
