"""nbgrader's formgrader on a grading run's class course, for grading the free-response answers.

    python -m autograder formgrader RUN_DIR [--port 8888]

Starts a Jupyter server on 127.0.0.1 with only the formgrader extension, in ``RUN_DIR`` (the
formgrader reads ``nbgrader_config.py`` from its working folder, which ``grade`` wrote there), with
the user's own Jupyter config shut out, and prints the address of its grading pages.

The server is the grader's alone, even on a machine shared with other users:

- it listens on 127.0.0.1 only, asks for a random token, checks XSRF on every form request, and
  has no terminals;
- the token reaches it in its environment (``JUPYTER_TOKEN``), which only the grader's user can
  read, never on its command line, which every user sees in ``ps``;
- its home, runtime, config and data folders (``RUN_DIR/.course/jupyter``) are mode 0700, the
  files in them and its log 0600, and it runs with umask 077, so that the files it writes itself
  (``jpserver-<pid>.json`` and ``-open.html``, which hold the token, the cookie secret) are private too.

The server lives exactly as long as the command: Ctrl-C or ``kill -TERM`` on the command stops it
(the server runs in a session of its own, so the terminal's Ctrl-C reaches the command, which stops
the server and waits for it), and on Linux the kernel stops it too if the command dies any other way
(``PR_SET_PDEATHSIG``). A port that something else already holds is an error saying so, before
anything starts. To grade from another machine, forward the port over SSH (``ssh -N -L``).
"""
from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from autograder.grading.gradebook import require_gradebook
from autograder.errors import InputError, SetupError

EXTENSION = "nbgrader.server_extensions.formgrader"


PRIVATE_UMASK = 0o077  # what the server creates: folders 0700, files 0600


def server_command(run: Path, port: int) -> list[str]:
    """The ``jupyter server`` command line: loopback, one extension, the cookie valid for every path
    (the formgrader's pages and its API live under different paths), XSRF checked, no terminal. It
    holds no secret: every user of the machine can read it (``ps``)."""
    return [str(Path(sys.executable).parent / "jupyter"), "server", "--no-browser", "--ip=127.0.0.1",
            f"--port={port}", "--port-retries=0", f"--ServerApp.root_dir={Path(run).resolve()}",
            "--IdentityProvider.cookie_options=path=/", "--ServerApp.disable_check_xsrf=False",
            "--ServerApp.allow_remote_access=False", "--ServerApp.terminals_enabled=False",
            f"--ServerApp.jpserver_extensions={EXTENSION}=True",
            *(["--allow-root"] if os.geteuid() == 0 else [])]


def make_private(path: Path) -> None:
    """``path`` and everything under it readable by its owner only: folders 0700, files 0600."""
    path = Path(path)
    if not path.exists():
        return
    os.chmod(path, 0o700 if path.is_dir() else 0o600)
    for folder, folders, files in os.walk(path):
        for name in folders:
            os.chmod(os.path.join(folder, name), 0o700, follow_symlinks=False)
        for name in files:
            if not os.path.islink(os.path.join(folder, name)):
                os.chmod(os.path.join(folder, name), 0o600)


def server_environment(home: Path, token: str) -> dict[str, str]:
    """The process environment: the token, a private home and config folders, nothing of the user's Jupyter setup."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
    for name in ("config", "data", "runtime", "ipython", "tmp"):
        (home / name).mkdir(mode=0o700, parents=True, exist_ok=True)
    make_private(home)  # also what an earlier server or an older version left there
    env.update(JUPYTER_TOKEN=token, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / "ipython"),
               JUPYTER_NO_CONFIG="1",  # the venv's etc/jupyter would enable lab and every nbgrader extension
               TMPDIR=str(home / "tmp"),
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    return env


def check_port(port: int) -> None:
    """``ValueError`` saying so when 127.0.0.1:``port`` is taken (another formgrader, an orphaned server,
    another program): the server would fail to start, and its address would reach the other one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise InputError(f"port {port} on 127.0.0.1 is in use ({error.strerror}): another formgrader or program "
                             f"listens there (`ss -ltnp 'sport = :{port}'` names it); stop it, or choose another "
                             "port with --port") from None


def die_with_parent() -> None:
    """In the server's process, before it runs: the kernel sends it SIGTERM when the command that started
    it dies, however it dies (Linux; elsewhere the command's own handlers stop it)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start(run: Path, port: int, token: str, home: Path, log: Path) -> subprocess.Popen:
    """Start the server in the background, in a session of its own, bound to this process's life;
    ``ValueError`` if ``run`` has no class gradebook or the port is taken."""
    run = Path(run)
    require_gradebook(run, config=True)
    check_port(port)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    env = server_environment(Path(home), token)
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the log shows addresses with the token
    os.fchmod(descriptor, 0o600)
    with open(descriptor, "wb") as out:
        return subprocess.Popen(server_command(run, port), cwd=run, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, umask=PRIVATE_UMASK, start_new_session=True,
                                preexec_fn=die_with_parent)


def wait_ready(process: subprocess.Popen, base: str, token: str, *, timeout: float = 60) -> None:
    """Wait until the formgrader serves this course (its gradebook API answers, not only the server)."""
    url = f"{base}/formgrader/api/assignments"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SetupError(f"jupyter server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"token {token}"}),
                                        timeout=2) as reply:
                json.load(reply)
                return
        except urllib.error.HTTPError as error:
            raise SetupError(f"the formgrader answered {error.code} for {url} (is {process.args} right?)") from error
        except ValueError:  # not the formgrader's JSON: another server answers on that port
            raise SetupError(f"something other than this formgrader answers on {base}; stop it, or choose another "
                               "port with --port") from None
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"the formgrader did not answer within {timeout:.0f} s")


class Stopped(Exception):
    """The command was asked to stop (SIGTERM, SIGHUP)."""


def stop(process: subprocess.Popen, grace: float = 10) -> None:
    """Stop the server (SIGTERM, then SIGKILL after ``grace`` seconds) and wait for it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve(run: Path, port: int) -> int:
    """Run the formgrader until Ctrl-C, SIGTERM or SIGHUP, which stop the server too; print the address."""
    token = secrets.token_hex(16)
    home = Path(run).resolve() / ".course" / "jupyter"

    def stopped(signum, frame):
        raise Stopped(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stopped) for sig in (signal.SIGTERM, signal.SIGHUP)}
    process = None
    try:
        process = start(run, port, token, home, home / "server.log")
        wait_ready(process, f"http://127.0.0.1:{port}", token)
        print(f"formgrader: http://127.0.0.1:{port}/formgrader?token={token}  (log: {home / 'server.log'}; Ctrl-C stops)",
              flush=True)
        print(f"from another machine: ssh -N -L {port}:127.0.0.1:{port} {os.environ.get('USER', 'you')}@"
              f"{socket.gethostname()}, then open the same address there", flush=True)
        code = process.wait()
        return code
    except (KeyboardInterrupt, Stopped):
        return 0
    finally:
        if process is not None:
            stop(process)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
