"""The convergence thresholds: recorded calibration is current, and the reference passes."""
from __future__ import annotations

import json

import pytest

import course_config as cfg
from autograder import data
from autograder.authoring import calibrate
from autograder.notebook_code import load_namespace


@pytest.fixture(scope="module")
def namespace():
    return load_namespace()


RECORDS = ["cpu.json", "cuda.json"]  # cuda.json: an H200 (autograder/calibration/README.md)


@pytest.mark.parametrize("record", RECORDS)
def test_recorded_calibration_covers_enough_seeds_and_all_pass(namespace, record):
    report = json.loads((cfg.CALIBRATION_DIR / record).read_text())
    assert report["seeds"] >= cfg.CALIBRATION_SEEDS
    assert report["all_passed"]
    for run in report["runs"]:
        assert run["passed"] == report["seeds"], run["target"]
        assert run["loss_margin"] > 0 and run["accuracy_margin"] > 0


@pytest.mark.parametrize("record", [
    "cpu.json",
    pytest.param("cuda.json", marks=pytest.mark.xfail(strict=True, reason=(
        "recorded on the subset's test split, before the convergence tests moved to the held-out images: "
        "run `python -m autograder calibrate` on a CUDA machine (autograder/calibration/README.md)")))])
def test_recorded_calibration_measured_what_the_grader_measures(record):
    report = json.loads((cfg.CALIBRATION_DIR / record).read_text())
    assert report.get("evaluation") == {"on": calibrate.EVALUATION, "sha256": data.read_checksums(cfg.HELDOUT_DIR)}, \
        "the held-out images changed since the calibration: run `python -m autograder calibrate`"


@pytest.mark.parametrize("record", RECORDS)
def test_recorded_calibration_used_the_notebook_thresholds_of_today(namespace, record):
    report = json.loads((cfg.CALIBRATION_DIR / record).read_text())
    assert report["settings"] == namespace["CONVERGENCE"]
    for run in report["runs"]:
        target = namespace["CONVERGENCE_TARGETS"][run["target"]]
        assert (run["max_loss"], run["min_accuracy"]) == (target["max_loss"], target["min_accuracy"]), \
            "the thresholds changed since the calibration: run `python -m autograder calibrate`"


def test_reference_passes_a_fresh_calibration_run(namespace):
    report = calibrate.calibrate(seeds=3, namespace=namespace)
    assert report["all_passed"], calibrate.format_report(report)
    # run times are recorded in the report (and in cpu.json), not asserted: machines are shared
