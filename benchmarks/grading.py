"""Grading speed and memory, measured side by side in one run.

Prints, on this machine:
- per submission: the median time of the 5 submissions of one ``grade`` run (1 worker), each
  graded from its copy to its feedback (sandbox, worker, guard, scoring, HTML feedback);
- the median of 5 runs of plain ``jupyter nbconvert --execute`` on the very notebook nbgrader
  executes (the reference with its hidden tests restored, outputs cleared); their ratio is
  the grader's overhead;
- a cold ``grade`` of a single submission, start to end (imports, the run's gradebook
  template and the class report included), and its peak memory, grader and kernel together
  (the largest sum of resident memory over the process tree, sampled every 20 ms);
- the wall time to grade N copies with 1 worker and with ``--workers W``, and the speed-up.
The last line is ``overhead <ratio>`` (target: under 1.5).

    python benchmarks/grading.py            # full: 5 repeats, 4 copies, 2 workers
    python benchmarks/grading.py --quick    # 1 repeat, 2 copies: a smoke test
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

REFERENCE = ROOT / "examples" / "submissions" / "reference.ipynb"
PYTHON = sys.executable


def timed(command: list[str], cwd: Path, env: dict | None = None) -> tuple[float, int]:
    """Run ``command``; return (seconds, peak resident bytes of its whole process tree)."""
    peak = 0
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = psutil.Process(process.pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if code:
        raise RuntimeError(f"{' '.join(command)} exited with {code}")
    return seconds, peak


def grade_command(folder: Path, out: Path, workers: int = 1) -> list[str]:
    return [PYTHON, "-m", "autograder", "grade", str(folder), "--out", str(out), "--workers", str(workers)]


def grade_once(work: Path, run: int) -> tuple[float, int, Path]:
    folder = work / f"one-{run}"
    folder.mkdir()
    shutil.copy(REFERENCE, folder / "reference.ipynb")
    out = work / f"out-one-{run}"
    seconds, peak = timed(grade_command(folder, out), ROOT)
    return seconds, peak, out / ".course" / "autograded" / "reference.ipynb"


def copies_of(folder: Path, count: int) -> Path:
    folder.mkdir()
    for k in range(count):
        shutil.copy(REFERENCE, folder / f"student{k}.ipynb")
    return folder


def nbconvert_once(notebook: Path, work: Path, run: int) -> float:
    """Execute the autograded notebook (outputs cleared) with plain nbconvert in the assignment folder."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    folder = work / f"plain-{run}"
    shutil.copytree(cfg.SOURCE_DIR / cfg.ASSIGNMENT_ID, folder, ignore=shutil.ignore_patterns("*.ipynb"))
    nbformat.write(nb, folder / "graded.ipynb")
    env = {**os.environ, "NBGRADER_EXECUTION": "autograde"}
    seconds, _ = timed([PYTHON, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--allow-errors",
                        "graded.ipynb", "--output", "executed.ipynb"], folder, env)
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat and 2 copies (smoke test)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each timing (median)")
    parser.add_argument("--copies", type=int, default=4, help="submissions in the workers comparison")
    parser.add_argument("--workers", type=int, default=2, help="workers in the parallel run")
    args = parser.parse_args(argv)
    repeats, copies = (1, 2) if args.quick else (args.repeats, args.copies)
    os.environ["PATH"] = str(Path(PYTHON).parent) + os.pathsep + os.environ["PATH"]
    print(f"{os.cpu_count()} CPU cores; sandbox: course_config.SANDBOX = {cfg.SANDBOX!r}")
    with tempfile.TemporaryDirectory(prefix="w4-bench-") as tmp:
        work = Path(tmp)
        cold, peak, autograded = grade_once(work, 0)
        plain = [nbconvert_once(autograded, work, run) for run in range(repeats)]
        batch = copies_of(work / "batch", repeats)
        timed(grade_command(batch, work / "out-batch"), ROOT)
        per_submission = [json.loads((work / "out-batch" / ".course" / "results" / f"student{k}.json").read_text())["seconds"]
                          for k in range(repeats)]
        grade_median, plain_median = statistics.median(per_submission), statistics.median(plain)
        print(f"grade, per submission:       median {grade_median:6.2f} s  "
              f"(runs: {', '.join(f'{s:.2f}' for s in per_submission)})")
        print(f"plain nbconvert --execute:   median {plain_median:6.2f} s  (runs: {', '.join(f'{s:.2f}' for s in plain)})")
        print(f"cold grade of one submission: {cold:.2f} s (start-up, gradebook template and class report included)")
        print(f"peak memory, grader + kernel: {peak / 2**20:.0f} MiB")
        many = copies_of(work / "many", copies)
        serial, _ = timed(grade_command(many, work / "out-serial"), ROOT)
        parallel, _ = timed(grade_command(many, work / "out-parallel", args.workers), ROOT)
        print(f"{copies} submissions: 1 worker {serial:.1f} s, {args.workers} workers {parallel:.1f} s, "
              f"speed-up {serial / parallel:.2f}")
    print(f"overhead {grade_median / plain_median:.2f}")


if __name__ == "__main__":
    main()
