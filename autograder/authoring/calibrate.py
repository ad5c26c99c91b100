"""Calibrate the convergence tests: run the reference solution over many seeds.

Each convergence test trains a network briefly (the notebook's ``train_briefly``) and the grader
compares its loss and accuracy on the held-out images (``autograder/grading/heldout.py``) with
``CONVERGENCE_TARGETS``. This step asks the reference solution the very questions the judge asks
(``autograder/grading/judge.py``, in this process) for ``course_config.CALIBRATION_SEEDS`` seeds on the
current device, and records the distribution, the time per run and the margin to each target
in ``autograder/calibration/<device>.json``. Every seed must pass.

    python -m autograder calibrate [--seeds K]
"""
from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import course_config as cfg
from autograder import data
from autograder.grading import judge
from autograder.notebook_code import load_namespace

# (name in CONVERGENCE_TARGETS, model class name, optimizer) of each convergence check
RUNS = [
    ("BNShallowNet", "BNShallowNet", "torch SGD"),
    ("DeepNet", "DeepNet", "torch SGD"),
    ("BNDeepNet", "BNDeepNet", "torch SGD"),
    ("Net", "Net", "SGDMomentum"),
]
EVALUATION = "held-out"  # what the losses and accuracies are measured on (autograder/grading/heldout.py)


@dataclass
class RunStats:
    target: str
    optimizer: str
    max_loss: float
    min_accuracy: float
    losses: list[float]
    accuracies: list[float]
    seconds: list[float]
    passed: int
    loss_margin: float  # max_loss - worst loss over the seeds (> 0: every seed passes)
    accuracy_margin: float  # worst accuracy - min_accuracy

    def summary(self) -> str:
        return (f"{self.target:13s} {self.optimizer:12s} pass {self.passed}/{len(self.losses)}  "
                f"loss {min(self.losses):.3f}..{max(self.losses):.3f} (target <= {self.max_loss}, margin {self.loss_margin:+.3f})  "
                f"acc {min(self.accuracies):.3f}..{max(self.accuracies):.3f} (target >= {self.min_accuracy}, margin {self.accuracy_margin:+.3f})  "
                f"{statistics.median(self.seconds):.2f} s/run")


def calibrate(seeds: int = cfg.CALIBRATION_SEEDS, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every convergence check of the reference for ``seeds`` seeds; return the report."""
    ns = namespace or load_namespace(cfg.SOURCE_NOTEBOOK)
    judging = judge.Judge(cfg.SOURCE_NOTEBOOK)
    targets, settings = judging.given("CONVERGENCE_TARGETS"), judging.given("CONVERGENCE")
    images, labels = judging.heldout()
    student = judge.Student(judge.LocalKernel(ns))
    results = []
    for target, class_name, optimizer in RUNS:
        spec = None
        if optimizer == "SGDMomentum":
            spec = {"class": "SGDMomentum", "kwargs": {"lr": settings["lr"], "beta": settings["momentum"]}}
        losses, accuracies, seconds = [], [], []
        for seed in range(seeds):
            start = time.perf_counter()
            outputs = student.train(class_name, images=images, seed=seed, epochs=settings["epochs"], optimizer=spec)
            loss, accuracy = judge.heldout_metrics(outputs, labels, class_name)
            seconds.append(time.perf_counter() - start)
            losses.append(loss)
            accuracies.append(accuracy)
        bounds = targets[target]
        passed = sum(loss <= bounds["max_loss"] and a >= bounds["min_accuracy"] for loss, a in zip(losses, accuracies))
        results.append(RunStats(target, optimizer, bounds["max_loss"], bounds["min_accuracy"], losses, accuracies,
                                seconds, passed, bounds["max_loss"] - max(losses), min(accuracies) - bounds["min_accuracy"]))
    device = str(ns["DEVICE"])
    import torch  # after the notebook, which imported it already

    return {
        "device": device,
        "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seeds": seeds,
        "settings": settings,
        "evaluation": {"on": EVALUATION, "sha256": data.read_checksums(cfg.HELDOUT_DIR)},
        "all_passed": all(r.passed == seeds for r in results),
        "runs": [asdict(r) for r in results],
    }


def write_report(report: dict[str, Any], folder: Path = cfg.CALIBRATION_DIR) -> Path:
    """Write ``<device>.json`` (cpu or cuda) under ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{report['device'].split(':')[0]}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    return path


def format_report(report: dict[str, Any]) -> str:
    """Human-readable table of a calibration report."""
    lines = [f"calibration on {report['device']} ({report['device_name']}, torch {report['torch']}, "
             f"{report['threads']} threads), {report['seeds']} seeds"]
    for run in report["runs"]:
        lines.append(RunStats(**run).summary())
    lines.append("all seeds pass" if report["all_passed"] else "SOME SEEDS FAIL: the thresholds are too tight")
    return "\n".join(lines)
