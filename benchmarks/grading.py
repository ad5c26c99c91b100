"""Grading speed and memory, measured side by side in one run.

Prints, on this machine:
- per submission, within a batch: the median time of N submissions of one ``grade`` run
  (1 worker), each graded from its copy to its feedback (sandbox, worker, guard, scoring, HTML
  feedback), with warm kernels (``autograder/kernel/zygote.py``) and with cold ones;
- the median of N runs of plain ``jupyter nbconvert --execute`` on the very notebook nbgrader
  executes (the reference with its hidden tests restored, outputs cleared);
- a cold start: ``grade`` of a single submission, start to end (imports, the zygote, the canary,
  the gradebook and the class report included), and its ratio to the within-batch time;
- the wall time to grade ``--copies`` copies with 1 worker and with ``--workers W``, the
  speed-up, and the peak memory of such a run (measured in a run of its own, as sampling it
  costs CPU): the largest sum over its process tree of
  proportional set sizes (PSS: a page shared copy-on-write by K processes counts 1/K in each)
  and, for comparison, of resident sizes (RSS: shared pages counted in every process);
- with ``--device cuda`` (a GPU machine), the same on the GPU; ``--device cpu`` hides GPUs.
The last line is ``overhead <ratio>``: warm per-submission time over plain nbconvert (target:
at most 0.5).

    python benchmarks/grading.py                  # full: 5 repeats, 8 copies, 2 workers
    python benchmarks/grading.py --quick          # 1 repeat, 2 copies: a smoke test
    python benchmarks/grading.py --device cuda    # on a GPU machine
    python benchmarks/grading.py --repeats 2 --copies 0   # per-submission times only
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import course_config as cfg  # noqa: E402
from autograder.grading.results import cell_seconds  # noqa: E402

REFERENCE = ROOT / "examples" / "submissions" / "reference.ipynb"
PYTHON = sys.executable


def pss(pid: int) -> int:
    """Proportional set size of a process, in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(root: psutil.Process) -> list[psutil.Process]:
    """``root`` and every process under it, the zygotes' kernels included (children of children)."""
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return [root]


def timed(command: list[str], cwd: Path, env: dict | None = None, *, pss_too: bool = False) -> tuple[float, int, int]:
    """Run ``command``; return (seconds, peak PSS, peak RSS of its whole process tree, in bytes).

    PSS is sampled only when asked (``pss_too``): reading ``smaps_rollup`` walks page tables and
    costs CPU that timed runs on 2 cores would feel; RSS is cheap and always sampled.
    """
    peak_pss = peak_rss = 0
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = psutil.Process(process.pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_pss, peak_rss
        while not done.is_set():
            tree = descendants(root)
            if pss_too:
                peak_pss = max(peak_pss, sum(pss(p.pid) for p in tree))
            rss = 0
            for p in tree:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            peak_rss = max(peak_rss, rss)
            time.sleep(0.2 if pss_too else 0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if code:
        raise RuntimeError(f"{' '.join(command)} exited with {code}")
    return seconds, peak_pss, peak_rss


def grade_command(folder: Path, out: Path, workers: int = 1, kernels: str = "warm") -> list[str]:
    return [PYTHON, "-m", "autograder", "grade", str(folder), "--out", str(out), "--workers", str(workers),
            "--kernels", kernels]


def grade_once(work: Path, run: int, env: dict) -> tuple[float, Path]:
    folder = work / f"one-{run}"
    folder.mkdir()
    shutil.copy(REFERENCE, folder / "reference.ipynb")
    out = work / f"out-one-{run}"
    seconds, _, _ = timed(grade_command(folder, out), ROOT, env)
    return seconds, out / ".course" / "autograded" / "reference.ipynb"


def per_submission(work: Path, count: int, kernels: str, env: dict) -> list[float]:
    """Seconds of each of ``count`` copies graded in one batch (1 worker), from their result files."""
    out = work / f"out-batch-{kernels}"
    timed(grade_command(copies_of(work / f"batch-{kernels}", count), out, kernels=kernels), ROOT, env)
    seconds = [json.loads((out / ".course" / "results" / f"student{k}.json").read_text())["seconds"] for k in range(count)]
    if kernels == "warm":
        print_cells(out, count)
    return seconds


def print_cells(out: Path, count: int, top: int = 6) -> None:
    """The ``top`` slowest cells of a batch's autograded notebooks, median over its ``count`` copies."""
    per_copy = [cell_seconds(out / ".course" / "autograded" / f"student{k}.ipynb", every_cell=True) for k in range(count)]
    medians = {name: statistics.median(c[name] for c in per_copy if name in c) for name in per_copy[0]}
    slowest = sorted(medians.items(), key=lambda item: -item[1])[:top]
    print("  slowest cells (warm kernels, median): " + ", ".join(f"{name} {s:.2f} s" for name, s in slowest))


def runs(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def copies_of(folder: Path, count: int) -> Path:
    folder.mkdir()
    for k in range(count):
        shutil.copy(REFERENCE, folder / f"student{k}.ipynb")
    return folder


def nbconvert_once(notebook: Path, work: Path, run: int, env: dict) -> float:
    """Execute the autograded notebook (outputs cleared) with plain nbconvert in the assignment folder."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    folder = work / f"plain-{run}"
    shutil.copytree(cfg.SOURCE_DIR / cfg.ASSIGNMENT_ID, folder, ignore=shutil.ignore_patterns("*.ipynb"))
    nbformat.write(nb, folder / "graded.ipynb")
    seconds, _, _ = timed([PYTHON, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--allow-errors",
                           "graded.ipynb", "--output", "executed.ipynb"], folder, {**env, "NBGRADER_EXECUTION": "autograde"})
    return seconds


def workers_and_memory(work: Path, copies: int, workers: int, env: dict) -> None:
    """``copies`` submissions with 1 worker and with ``workers``; the peak memory of the latter."""
    many = copies_of(work / "many", copies)
    serial, _, _ = timed(grade_command(many, work / "out-serial"), ROOT, env)
    parallel, _, _ = timed(grade_command(many, work / "out-parallel", workers), ROOT, env)
    _, peak_pss, peak_rss = timed(grade_command(many, work / "out-memory", workers), ROOT, env, pss_too=True)
    print(f"{copies} submissions: 1 worker {serial:.1f} s, {workers} workers {parallel:.1f} s, "
          f"speed-up {serial / parallel:.2f}")
    print(f"peak memory of the {workers}-worker run, whole process tree: PSS {peak_pss / 2**20:.0f} MiB "
          f"(RSS {peak_rss / 2**20:.0f} MiB, counting shared pages once per process)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 repeat and 2 copies (smoke test)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each timing (median)")
    parser.add_argument("--copies", type=int, default=8, help="submissions in the workers comparison (0: skip it and the memory run)")
    parser.add_argument("--workers", type=int, default=2, help="workers in the parallel run")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="what the kernels run on (cuda: a GPU machine; cpu hides GPUs)")
    args = parser.parse_args(argv)
    repeats, copies = (1, 2) if args.quick else (args.repeats, args.copies)
    env = {**os.environ, "PATH": str(Path(PYTHON).parent) + os.pathsep + os.environ["PATH"]}
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif not os.path.exists("/dev/nvidiactl"):
        raise SystemExit("--device cuda: no NVIDIA GPU on this machine")
    print(f"{os.cpu_count()} CPU cores; device {args.device}; sandbox: course_config.SANDBOX = {cfg.SANDBOX!r}")
    with tempfile.TemporaryDirectory(prefix="w4-bench-") as tmp:
        work = Path(tmp)
        cold_start, autograded = grade_once(work, 0, env)
        plain = [nbconvert_once(autograded, work, run, env) for run in range(repeats)]
        warm = per_submission(work, repeats, "warm", env)
        cold = per_submission(work, repeats, "cold", env)
        warm_median, cold_median, plain_median = statistics.median(warm), statistics.median(cold), statistics.median(plain)
        print(f"grade, per submission, warm kernels: median {warm_median:6.2f} s  (runs: {runs(warm)})")
        print(f"grade, per submission, cold kernels: median {cold_median:6.2f} s  (runs: {runs(cold)})")
        print(f"plain nbconvert --execute:           median {plain_median:6.2f} s  (runs: {runs(plain)})")
        print(f"cold start, one submission: {cold_start:.2f} s = {cold_start / warm_median:.1f}x the within-batch time "
              "(imports, zygote, canary, gradebook and class report included)")
        if copies:
            workers_and_memory(work, copies, args.workers, env)
    print(f"warm vs cold kernels: {warm_median / cold_median:.2f}")
    print(f"overhead {warm_median / plain_median:.2f}")


if __name__ == "__main__":
    main()
