"""Warm grading kernels: a pre-imported Python forked once per kernel (a zygote).

Starting a kernel costs seconds before the first student line runs: the interpreter, ipykernel, and the
notebook's ``import torch``, ``torchvision`` and ``matplotlib``. The zygote pays that once per worker: it
imports the stack (no student code, no CUDA: CUDA does not survive a fork) and then forks a child for every
kernel the grader asks for.

Isolation is kept per child (the README's "Warm kernels" lists it): with the sandbox
(``autograder/kernel/sandbox.py``) the zygote runs inside bubblewrap's allow-listed file system, with no
network, as root of that view; each child then, before any student code, unshares its own mount, pid and IPC
namespaces and gets fresh scratch folders (``child_setup``), and forks the kernel as pid 1 of its pid
namespace, which drops to the submission's user with its limits and re-seeds every random generator
(``become_kernel``). Nothing passes from one kernel to the next. Without the sandbox the zygote runs as the
grader's user and each child gets a fresh scratch folder only.

Kernels are launched through a kernelspec whose command is this file's ``launch``: a small process that asks
the zygote for a child, puts it into the submission's cgroups before it runs, and lives as long as the kernel
does, so that jupyter_client and nbgrader manage it as any local kernel. Standard library only at the top: the
sandbox binds this file alone (never the course repository) into the zygote's file system.

    python zygote.py serve SOCKET CONFIG.json      the zygote (inside bwrap when sandboxed)
    python zygote.py launch SOCKET CONFIG.json CONNECTION_FILE   the kernelspec's command
"""
from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import socket
import sys

# What the zygote imports before forking: the notebook's stack and the kernel itself. Not the modules
# that look around when imported: pyplot and matplotlib_inline hook into the running IPython, tqdm.auto
# picks its display by it; a child imports them in its own kernel, in milliseconds once these are loaded.
PRELOAD = ("numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.utils.data", "torchvision",
           "torchvision.datasets", "torchvision.transforms", "matplotlib", "matplotlib.figure", "matplotlib.font_manager",
           "matplotlib.backends.backend_agg", "tqdm", "tqdm.std", "ipywidgets", "ipykernel.kernelapp",
           "ipykernel.ipkernel")
ZYGOTE_DIR = "/run/zygote"  # the zygote's socket and code, inside the sandbox; hidden from every child
COURSE_DIR = "/srv/course"  # the notebook's data and figures, read-only, linked into each child's home

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_RDONLY, MS_REC, MS_PRIVATE = 2, 4, 8, 1, 0x4000, 1 << 18
MS_REMOUNT, MS_BIND, MS_MOVE = 32, 4096, 8192
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def unshare(flags: int) -> None:
    _check(_libc().unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    raw = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    _check(_libc().mount(raw[0], raw[1], raw[2], ctypes.c_ulong(flags), raw[3]), f"mount {target}")


def prctl(option: int, value: int) -> None:
    _check(_libc().prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl {option}")


def send(sock: socket.socket, message: dict) -> None:
    sock.sendall((json.dumps(message) + "\n").encode())


def receive(stream) -> dict:
    line = stream.readline()
    if not line:
        raise ConnectionError("the other side closed the connection")
    return json.loads(line)


# --- the zygote ---------------------------------------------------------------------------------

def preload() -> None:
    """Import the notebook's stack (threads come from OMP_NUM_THREADS, read by each child at first use)."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # a package the course does not install: the kernel imports it itself
            pass
    # no torch call here: one would start its thread pool, which a forked child cannot use
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():  # CUDA does not survive a fork
        raise SystemExit("zygote: CUDA was initialized while importing; kernels cannot be forked from here")
    import gc

    gc.collect()
    gc.freeze()  # a child's garbage collector skips what it inherited: no copy-on-write of the whole heap


def mounts_under(folder: str) -> list[tuple[str, bool]]:
    """(mount point, read-only?) of every mount strictly below ``folder``, parents first."""
    found = []
    with open("/proc/self/mountinfo") as table:
        for line in table:
            fields = line.split()
            point = fields[4]
            for escaped, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
                point = point.replace(escaped, char)  # how the kernel writes these characters in mountinfo
            if point.startswith(folder.rstrip("/") + "/"):
                found.append((point, "ro" in fields[5].split(",")))
    return sorted(found, key=lambda item: item[0].count("/"))


def fresh_tmp(options: str) -> None:
    """An empty tmpfs on /tmp that keeps what the sandbox bound below it (a venv or a course under
    /tmp): the new tmpfs is built at ZYGOTE_DIR, those binds are bound into it (read-only again
    where they were), and it is moved onto /tmp."""
    stage = ZYGOTE_DIR
    mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, options)
    bound: list[str] = []
    for point, readonly in mounts_under("/tmp"):
        if any(point.startswith(parent + "/") for parent in bound):
            continue  # came along with its parent's recursive bind
        bound.append(point)
        target = stage + point[len("/tmp"):]
        if os.path.isdir(point):
            os.makedirs(target, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            open(target, "a").close()
        mount(point, target, None, MS_BIND | MS_REC)
        if readonly:  # a bind does not copy the read-only flag
            mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    mount(stage, "/tmp", None, MS_MOVE)


def child_setup(config: dict, request: dict) -> None:
    """In the forked child, before the kernel: its own namespaces and empty scratch folders."""
    home = config["home"]
    if config["isolate"]:
        unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC)
        mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here leaks back to the zygote
        size = f"size={int(config['scratch_bytes'])}"
        fresh_tmp(f"mode=1777,{size}")
        mount("tmpfs", home, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0755,uid={request['uid']},gid={request['gid']},{size}")
        mount("tmpfs", ZYGOTE_DIR, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k,mode=0555")
        for name in ("data", "figures"):
            if os.path.isdir(f"{COURSE_DIR}/{name}"):
                os.symlink(f"{COURSE_DIR}/{name}", f"{home}/{name}")


def become_kernel(config: dict, request: dict) -> None:
    """The kernel process: drop to the submission's user, set limits, re-seed, run ipykernel."""
    import random
    import resource

    if config["isolate"]:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # this pid namespace's only
        os.setgroups([])
        os.setresgid(request["gid"], request["gid"], request["gid"])
        os.setresuid(request["uid"], request["uid"], request["uid"])  # from root: every capability goes
        prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
    limits = request.get("limits", {})
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(config["home"] if config["isolate"] else request["scratch"])  # unsandboxed: the notebook's folder
    random.seed()
    try:
        import numpy
        import torch

        numpy.random.seed()
        torch.seed()
    except ImportError:
        pass
    sys.argv = ["ipykernel_launcher", "-f", request["connection_file"]]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


def fork_kernel(config: dict, request: dict) -> tuple[int, int]:
    """Fork the child for one kernel; return (its pid, the write end of its start pipe).

    The child waits on the pipe until the launcher has put it into the submission's cgroups.
    """
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(go_read)
        return pid, go_write
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        os.closerange(3, go_read)
        os.closerange(go_read + 1, 65536)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        child_setup(config, request)
        if os.read(go_read, 1) != b"g":
            os._exit(1)
        os.close(go_read)
        kernel = os.fork()
        if kernel == 0:
            try:
                become_kernel(config, request)
                os._exit(0)
            except BaseException:
                import traceback

                traceback.print_exc()
                os._exit(1)
        _, status = os.waitpid(kernel, 0)
        code = os.waitstatus_to_exitcode(status)
    except BaseException:
        import traceback

        traceback.print_exc()
    os._exit(code if code >= 0 else 128 - code)


def serve(socket_path: str, config_path: str) -> None:
    """Import the stack, then fork a kernel per request until the grader stops this process."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the grader gone, its zygote goes too
    config = json.loads(open(config_path).read())
    preload()
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    os.chmod(socket_path, 0o600)  # the launcher (root on the host) connects; kernels never see it
    server.listen(8)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    events = selectors.DefaultSelector()
    events.register(server, selectors.EVENT_READ, "accept")
    events.register(wake_read, selectors.EVENT_READ, "child")
    children: dict[int, tuple[socket.socket, int | None]] = {}  # pid -> (launcher connection, start pipe)
    forks = 0
    print(f"zygote ready: {len(sys.modules)} modules imported", flush=True)
    while True:
        for key, _ in events.select():
            if key.data == "accept":
                conn, _ = server.accept()
                try:
                    request = receive(conn.makefile("r"))
                    pid, go = fork_kernel(config, request)
                    forks += 1
                    print(f"zygote: fork {forks}: pid {pid}", flush=True)
                    send(conn, {"pid": pid})
                    children[pid] = (conn, go)
                    events.register(conn, selectors.EVENT_READ, pid)
                except (OSError, ValueError, ConnectionError) as error:
                    print(f"zygote: a launch failed: {error}", flush=True)
                    conn.close()
            elif key.data == "child":
                os.read(wake_read, 4096)
                while True:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    conn, go = children.pop(pid, (None, None))
                    if go is not None:
                        os.close(go)
                    if conn is not None:
                        events.unregister(conn)
                        try:
                            send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                        except OSError:
                            pass
                        conn.close()
            else:  # a launcher: "go" once the child is in its cgroups, or gone (its kernel was killed)
                pid = key.data
                conn, go = children[pid]
                data = conn.recv(64)
                if data.startswith(b"go") and go is not None:
                    os.write(go, b"g")
                    os.close(go)
                    children[pid] = (conn, None)
                elif not data:
                    events.unregister(conn)
                    conn.close()
                    children[pid] = (None, go)
                    try:
                        os.kill(pid, signal.SIGKILL)  # the kernel, pid 1 of its namespace, dies with it
                    except ProcessLookupError:
                        pass


# --- the launcher (the kernelspec's command, on the host) ---------------------------------------

def host_pid(zygote_pid: int, pid_in_zygote: int) -> int | None:
    """The host's pid of the zygote's child ``pid_in_zygote`` (the zygote may see another pid namespace).

    ``zygote_pid`` is the host pid the grader started (bwrap, when sandboxed): the child is the process
    below it whose pid in its own namespace is ``pid_in_zygote``.
    """
    if zygote_pid <= 0:
        return pid_in_zygote
    parents, candidates = {}, []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = open(f"/proc/{entry}/status").read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry)] = int(fields.get("PPid", "0"))
        nspid = fields.get("NSpid", "").split()
        if nspid and int(nspid[-1]) == pid_in_zygote:
            candidates.append(int(entry))
    for candidate in candidates:
        ancestor = parents.get(candidate, 0)
        for _ in range(8):  # bwrap, its init, the zygote: a few levels at most
            if ancestor == zygote_pid:
                return candidate
            ancestor = parents.get(ancestor, 0)
    return None


def sandboxed_connection(connection_file: str, host_dir: str, inside_dir: str, uid: int, gid: int, name: str) -> str:
    """Write ``connection_file`` again as a sandboxed kernel must read it, as ``name`` in the folder of
    its sockets; return that file's path inside the sandbox (where ``host_dir`` is ``inside_dir``).

    Its sockets are named by their paths inside, and the file belongs to the kernel's user, mode 600.
    Any transport but ipc is refused: the sandbox has no network. Cold kernels (``sandbox.launch``) and
    warm ones (``launch`` here) both call this; it lives here because the launcher runs this file alone.
    """
    connection = json.loads(open(connection_file).read())
    if connection.get("transport") != "ipc":
        raise SystemExit(f"sandbox: the kernel's connection file {connection_file} uses "
                         f"{connection.get('transport')!r}; the sandboxed kernel has no network and needs 'ipc'")
    relative = os.path.relpath(os.path.dirname(connection["ip"]), host_dir)
    inside = os.path.normpath(f"{inside_dir}/{relative}")
    connection["ip"] = f"{inside}/{os.path.basename(connection['ip'])}"  # the same sockets, seen from inside
    host = os.path.join(host_dir, relative, name)
    with open(host, "w") as f:
        json.dump(connection, f)
    os.chown(host, uid, gid)
    os.chmod(host, 0o600)
    return f"{inside}/{name}"


def launch(socket_path: str, config_path: str, connection_file: str) -> int:
    """Ask the zygote for a kernel with ``connection_file``; wait as long as it runs; its exit status."""
    config = json.loads(open(config_path).read())
    # unsandboxed, the kernel runs where and with what jupyter_client gave the launcher
    env = dict(config["env"] or os.environ)
    env.update({name: os.environ[name] for name in config.get("inherit", []) if name in os.environ})
    request = {"env": env, "uid": config["uid"], "gid": config["gid"], "limits": config["limits"],
               "scratch": os.getcwd(), "connection_file": connection_file}
    if config["isolate"]:  # the kernel's own folder is under the slot's IPC folder
        request["connection_file"] = sandboxed_connection(connection_file, config["ipc"], config["ipc_inside"],
                                                          config["uid"], config["gid"], f"connection-{os.getpid()}.json")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(socket_path)
    stream = conn.makefile("r")
    send(conn, request)
    pid = receive(stream)["pid"]
    real = host_pid(int(config.get("zygote_pid", 0)), pid)
    if config.get("cgroup") and real is None:  # limits it could not be given: no kernel rather than an unlimited one
        conn.close()
        return 1
    if config.get("cgroup") and real:
        for controller in config.get("cgroup_controllers", ["memory", "pids"]):
            with open(f"/sys/fs/cgroup/{controller}/{config['cgroup']}/cgroup.procs", "w") as procs:
                procs.write(str(real))
    # jupyter_client terminates the launcher: the zygote kills the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts go to the kernel as messages
    conn.sendall(b"go")
    try:
        return int(receive(stream)["exit"])
    except (ConnectionError, ValueError):
        return 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["launch"]:
        sys.exit(launch(sys.argv[2], sys.argv[3], sys.argv[4]))
    else:
        raise SystemExit(__doc__)
