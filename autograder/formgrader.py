"""nbgrader's formgrader on a grading run's class course, for grading the free-response answers.

    python -m autograder formgrader RUN_DIR [--port 8888]

Starts a Jupyter server on 127.0.0.1 with only the formgrader extension, in ``RUN_DIR`` (the
formgrader reads ``nbgrader_config.py`` from its working folder, which ``grade`` wrote there), with
the user's own Jupyter config shut out, and prints the address of its grading pages.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from autograder.gradebook import GRADEBOOK

EXTENSION = "nbgrader.server_extensions.formgrader"


def server_command(run: Path, port: int, token: str) -> list[str]:
    """The ``jupyter server`` command line: loopback, one extension, the cookie valid for every path
    (the formgrader's pages and its API live under different paths)."""
    return [str(Path(sys.executable).parent / "jupyter"), "server", "--no-browser", "--ip=127.0.0.1",
            f"--port={port}", "--port-retries=0", f"--ServerApp.root_dir={Path(run).resolve()}",
            f"--IdentityProvider.token={token}", "--IdentityProvider.cookie_options=path=/",
            f"--ServerApp.jpserver_extensions={EXTENSION}=True",
            *(["--allow-root"] if os.geteuid() == 0 else [])]


def server_environment(home: Path) -> dict[str, str]:
    """The process environment: a private home and config folders, nothing of the user's Jupyter setup."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
    for name in ("config", "data", "runtime", "ipython", "tmp"):
        (home / name).mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / "ipython"),
               JUPYTER_NO_CONFIG="1",  # the venv's etc/jupyter would enable lab and every nbgrader extension
               TMPDIR=str(home / "tmp"),
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    return env


def start(run: Path, port: int, token: str, home: Path, log: Path) -> subprocess.Popen:
    """Start the server in the background; ``ValueError`` if ``run`` has no class gradebook."""
    run = Path(run)
    if not (run / GRADEBOOK).is_file() or not (run / "nbgrader_config.py").is_file():
        raise ValueError(f"{run}: no class gradebook or nbgrader_config.py; grade into it first "
                         f"(python -m autograder grade SUBMISSIONS --out {run})")
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        return subprocess.Popen(server_command(run, port, token), cwd=run, env=server_environment(Path(home)),
                                stdout=out, stderr=subprocess.STDOUT)


def wait_ready(process: subprocess.Popen, base: str, token: str, *, timeout: float = 60) -> None:
    """Wait until the formgrader serves this course (its gradebook API answers, not only the server)."""
    url = f"{base}/formgrader/api/assignments"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"token {token}"}),
                                        timeout=2) as reply:
                json.load(reply)
                return
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"the formgrader answered {error.code} for {url} (is {process.args} right?)") from error
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"the formgrader did not answer within {timeout:.0f} s")


def serve(run: Path, port: int) -> int:
    """Run the formgrader until Ctrl-C; print the address to open."""
    token = secrets.token_hex(16)
    home = Path(run).resolve() / ".course" / "jupyter"
    process = start(run, port, token, home, home / "server.log")
    try:
        wait_ready(process, f"http://127.0.0.1:{port}", token)
        print(f"formgrader: http://127.0.0.1:{port}/formgrader?token={token}  (log: {home / 'server.log'}; Ctrl-C stops)",
              flush=True)
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        process.terminate()
        process.wait(10)
