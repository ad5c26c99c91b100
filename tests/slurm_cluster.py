"""A one-node Slurm cluster on localhost for the tests: munged, slurmctld and slurmd, stopped by their PIDs.

Everything lives in a temporary folder: slurm.conf, munge's key and socket, the state, the spool and the
logs; the ports are free ones. ``SLURM_CONF`` points the client commands (sbatch, squeue, scancel) at it
for the session. Skips, saying why, without Slurm and munge (``make slurm-tools`` installs them) or root.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo")
SBIN = os.pathsep.join(["/usr/sbin", "/usr/local/sbin", "/sbin"])  # the daemons, off a non-root PATH
START_S = 60  # from the daemons' start to the node shown idle


@dataclass
class Cluster:
    folder: Path
    conf: Path

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
                         for log in sorted((self.folder / "log").glob("*.log")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mib() -> int:
    """Physical memory in MiB (/proc/meminfo's MemTotal): slurmd drains a node declared with more."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


def slurm_conf(folder: Path, munge_socket: Path, cpus: int, memory: int) -> str:
    return "\n".join([
        "ClusterName=autograder-test",
        "SlurmctldHost=localhost",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "SlurmUser=root",
        "AuthType=auth/munge",
        f"AuthInfo=socket={munge_socket}",
        "ProctrackType=proctrack/linuxproc",  # no cgroup plugin: runs wherever root runs
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",  # a task takes a CPU; memory is not a consumable here
        "MpiDefault=none",
        "ReturnToService=2",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'log' / 'slurmd.log'}",
        f"NodeName=localhost CPUs={cpus} RealMemory={memory} State=UNKNOWN",
        "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def missing_tools() -> list[str]:
    path = os.environ.get("PATH", "") + os.pathsep + SBIN
    return [tool for tool in DAEMONS + CLIENTS if shutil.which(tool, path=path) is None]


def stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM each daemon by its PID, last started first; SIGKILL one that is still there after 10 s."""
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running one-node cluster (``Cluster``); ``SLURM_CONF`` names its slurm.conf until the session ends."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"Slurm or munge not installed ({', '.join(missing)} missing): `make slurm-tools` installs "
                    "slurm-wlm and munge")
    if os.geteuid() != 0:
        pytest.skip("the one-node Slurm cluster needs root (slurmd starts each job as its user)")
    if memory_mib() < 5000:
        pytest.skip(f"{memory_mib()} MiB of memory: a grading task asks Slurm for 4 GiB")
    # not under pytest's base folder, which only its owner may enter: munged refuses a socket there
    folder = Path(tempfile.mkdtemp(prefix="autograder-slurm-"))
    folder.chmod(0o755)
    for sub in ("state", "spool", "log", "munge"):
        (folder / sub).mkdir()
    (folder / "munge").chmod(0o700)
    munge_socket = folder / "munge.sock"
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, munge_socket, os.cpu_count() or 1, int(memory_mib() * 0.9)))
    path = os.environ.get("PATH", "") + os.pathsep + SBIN
    tool = {name: shutil.which(name, path=path) for name in DAEMONS}
    key = folder / "munge" / "munge.key"
    subprocess.run([tool["mungekey"], "--create", f"--keyfile={key}"], check=True, capture_output=True)
    old_conf = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    processes: list[subprocess.Popen] = []
    try:
        def start(*command: str, log: str) -> None:
            with open(folder / "log" / log, "ab") as out:
                processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                                  start_new_session=True))

        start(tool["munged"], "--foreground", f"--socket={munge_socket}", f"--key-file={key}",
              f"--pid-file={folder / 'munged.pid'}", f"--seed-file={folder / 'munge' / 'munge.seed'}",
              f"--log-file={folder / 'log' / 'munged.log'}", log="munged.out.log")
        deadline = time.monotonic() + START_S
        while not munge_socket.exists() and processes[0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        start(tool["slurmctld"], "-D", "-f", str(conf), log="slurmctld.out.log")
        start(tool["slurmd"], "-D", "-f", str(conf), log="slurmd.out.log")
        cluster = Cluster(folder, conf)
        state = ""
        while time.monotonic() < deadline:
            died = [p.args[0] for p in processes if p.poll() is not None]
            if died:
                pytest.fail(f"{', '.join(died)} stopped while the cluster started:\n{cluster.log_tail()}")
            state = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True).stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the node is not idle {START_S} s after the daemons started (sinfo: {state!r}):\n"
                        f"{cluster.log_tail()}")
        yield cluster
        subprocess.run(["scancel", "--full", "--user", str(os.geteuid())], capture_output=True)  # nothing outlives it
    finally:
        stop(processes)
        shutil.rmtree(folder, ignore_errors=True)
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf
