"""Smoke tests of the figure generator and the pipeline benchmark, in their quick modes."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import course_config as cfg
from autograder.authoring import figures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PNG_BYTES = 80_000  # the figures ship with the notebook: keep them small


def test_quick_figures_writes_three_small_pngs_and_their_numbers(tmp_path: Path) -> None:
    paths = figures.make_figures(tmp_path, quick=True)
    pngs = [figures.MINIBATCH_PNG, figures.BATCHNORM_PNG, figures.MOMENTUM_PNG]
    numbers = [figures.MINIBATCH_JSON, figures.BATCHNORM_JSON, figures.MOMENTUM_JSON]
    assert sorted(p.name for p in paths) == sorted(pngs + numbers)
    for path in (p for p in paths if p.suffix == ".json"):
        assert json.loads(path.read_text()), f"{path.name} is empty"
    for path in (p for p in paths if p.suffix == ".png"):
        assert path.parent == tmp_path
        content = path.read_bytes()
        assert content.startswith(PNG_SIGNATURE), f"{path.name} is not a PNG"
        assert 1_000 < len(content) < MAX_PNG_BYTES, f"{path.name}: {len(content)} bytes"


def test_quick_figures_refuse_to_replace_the_shipped_ones() -> None:
    with pytest.raises(ValueError, match="quick"):
        figures.make_figures(figures.FIGURES_DIR, quick=True)


@pytest.fixture(scope="module")
def notebook() -> dict:
    from autograder.notebook_code import load_namespace

    return load_namespace()  # the reference solution's code: its momentum_update, BOWL and bowl_path


def test_bowl_path_follows_the_notebook_rule(notebook) -> None:
    # beta = 0 with a zero buffer is plain gradient descent: w <- w - lr * c * w, per coordinate.
    bowl = figures.Bowl.of_notebook(notebook)
    path = notebook["bowl_path"](notebook["momentum_update"], 0.0, bowl.curvatures, bowl.start, bowl.lr, 3)
    factors = [1 - bowl.lr * c for c in bowl.curvatures]
    assert path.shape == (4, 2)
    for step in range(4):
        for axis in range(2):
            assert path[step, axis] == pytest.approx(bowl.start[axis] * factors[axis] ** step)


def test_quick_benchmark_prints_a_speedup() -> None:
    # One thread: on a busy machine, two OpenMP threads sharing a core can stall each other for seconds.
    result = subprocess.run([sys.executable, str(cfg.ROOT / "benchmarks" / "experiments.py"), "--quick", "--threads", "1"],
                            cwd=cfg.ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"speedup \d+(\.\d+)?", last), f"last line: {last!r}"
    assert float(last.split()[1]) > 0


def test_convergence_benchmark_times_every_network_and_variant_on_the_cpu() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(cfg.ROOT / "benchmarks" / "convergence.py"), "--repeats", "1"],
                            cwd=cfg.ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("cpu ")]
    assert [row[1] for row in rows[1:]] == ["Net", "BNShallowNet", "DeepNet", "BNDeepNet"]
    for row in rows[1:]:  # seconds of the notebook, sum on device and fused SGD, then the accuracy the run reached
        assert all(float(seconds) > 0 for seconds in row[2:5]), row
        assert 80 < float(row[5]) < 100, row
    assert re.fullmatch(r"no GPU here: cpu, all 4 networks \d+\.\d+ s", result.stdout.strip().splitlines()[-1])


# --- the shipped figures agree with the notebook's text and answer keys ----------------------------

def shipped_numbers(name: str) -> dict:
    return json.loads((figures.FIGURES_DIR / name).read_text())


def markdown_mentioning(text: str) -> str:
    import nbformat

    nb = nbformat.read(cfg.SOURCE_NOTEBOOK, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown" and text in c.source)


def model_answer(grade_id: str) -> str:
    import nbformat

    nb = nbformat.read(cfg.SOURCE_NOTEBOOK, as_version=4)
    return next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def test_the_momentum_figure_shows_the_damping_the_text_and_the_answer_key_claim(notebook) -> None:
    shipped = shipped_numbers(figures.MOMENTUM_JSON)
    bowl = figures.Bowl.of_notebook(notebook)
    assert shipped["bowl"] == {"curvatures": list(bowl.curvatures), "start": list(bowl.start), "lr": bowl.lr,
                               "steps": bowl.steps}, "momentum.json is stale: python -m autograder figures"
    paths = figures.descent_paths(notebook["bowl_path"], notebook["momentum_update"], bowl)
    assert figures.momentum_numbers(paths, bowl) == shipped["by_beta"], "momentum.json is stale"
    plain, momentum = shipped["by_beta"]["0.0"], shipped["by_beta"]["0.9"]
    early, late = figures.MOMENTUM_STEPS
    # what section 4 says and mcq_momentum keys (damps_oscillations, closer_to_minimum: True)
    assert momentum[f"crossings_in_{late}"] < plain[f"crossings_in_{late}"], "momentum does not cross less often"
    for step in (early, late):
        assert momentum[f"abs_w2_after_{step}"] < plain[f"abs_w2_after_{step}"], f"|w2| not damped after {step} steps"
    assert momentum[f"abs_w1_after_{late}"] < plain[f"abs_w1_after_{late}"], "momentum is not faster along w1"
    caption = markdown_mentioning("attachment:momentum.png")
    for entry in (plain, momentum):
        for key in (f"abs_w2_after_{early}", f"abs_w2_after_{late}", f"abs_w1_after_{late}"):
            assert f"{entry[key]:.2f}" in caption, f"the text does not quote {key} = {entry[key]:.2f}"
        assert str(entry[f"crossings_in_{late}"]) in caption
    assert f"{bowl.lr:g}" in caption


def test_the_batchnorm_model_answer_quotes_the_figure() -> None:
    losses = shipped_numbers(figures.BATCHNORM_JSON)["loss_per_epoch"]
    answer = model_answer("q_bn_helped_or_hurt")
    quoted = [(name, split, epoch) for name in ("DeepNet", "BNDeepNet") for split in ("train", "test") for epoch in (0, -1)]
    quoted += [(name, split, -1) for name in ("Net", "BNShallowNet") for split in ("train", "test")]
    for name, split, epoch in quoted:
        value = f"{losses[name][split][epoch]:.2f}"
        assert value in answer, f"the model answer does not quote {name}'s {split} loss {value} (epoch {epoch})"
    question = markdown_mentioning("attachment:batchnorm.png")
    assert "dropout" in question and "dropout" in answer.split("**Rubric")[1], \
        "the question and the rubric must name the dropout that differs between Net and BNShallowNet"


def mcq_key(grade_id: str) -> dict:
    import ast

    code = judge_tests()[grade_id]
    return next(ast.literal_eval(node.value) for node in ast.parse(code).body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_KEY")


def judge_tests() -> dict:
    from autograder.grading.judge import hidden_tests

    return hidden_tests(cfg.SOURCE_NOTEBOOK)


def test_the_momentum_keys_are_what_the_figure_shows() -> None:
    by_beta = shipped_numbers(figures.MOMENTUM_JSON)["by_beta"]
    plain, good, high = by_beta["0.0"], by_beta["0.9"], by_beta["0.99"]
    late = figures.MOMENTUM_STEPS[1]
    shown = {
        "damps_oscillations": good[f"crossings_in_{late}"] < plain[f"crossings_in_{late}"]
        and good[f"abs_w2_after_{late}"] < plain[f"abs_w2_after_{late}"],
        "closer_to_minimum": good[f"abs_w1_after_{late}"] < plain[f"abs_w1_after_{late}"],
        "larger_beta_always_faster": high[f"abs_w1_after_{late}"] < good[f"abs_w1_after_{late}"],
        "per_parameter_step_sizes": False,  # one learning rate for every parameter: the rule in section 4
    }
    assert mcq_key("test_mcq_momentum") == shown


def test_each_multiple_choice_key_is_balanced() -> None:
    for grade_id in ("test_mcq_minibatch", "test_mcq_momentum"):
        key = mcq_key(grade_id)
        assert sum(key.values()) * 2 == len(key), f"{grade_id}: as many True as False, so a constant answer earns 0"


def test_the_ravine_rates_the_text_quotes(notebook) -> None:
    import math

    bowl = figures.Bowl.of_notebook(notebook)
    plain_rate, momentum_rate = 1 - bowl.lr * bowl.curvatures[0], math.sqrt(0.9)
    text = markdown_mentioning("attachment:momentum.png")
    assert f"{plain_rate:.3f}" in text and f"{momentum_rate:.3f}" in text
    plain, good = (shipped_numbers(figures.MOMENTUM_JSON)["by_beta"][b]["abs_w1_after_40"] for b in ("0.0", "0.9"))
    assert round(plain / good) == 10 and "ten times closer" in text


def test_the_batch_size_model_answer_quotes_the_figure() -> None:
    numbers = shipped_numbers(figures.MINIBATCH_JSON)
    runs, seconds = numbers["by_batch_size"], numbers["seconds_per_size"]
    answer = " ".join(model_answer("q_convergence_vs_batch_size").split())
    for size in ("8", "1024"):
        assert f"{100 * runs[size]['test_accuracy']:.2f} % at {size}" in answer, size
    middle = [100 * runs[size]["test_accuracy"] for size in ("16", "32", "64", "256")]
    assert f"{min(middle):.2f} to {max(middle):.2f} %" in answer
    assert f"about {round((max(middle) - min(middle)) * 100)} of the 10,000" in answer  # 0.01 % is one image
    assert f"about {round(runs['8']['updates'] * 8, -3):,.0f} in the {seconds:g} s at b = 8" in answer
    assert f"{runs['1024']['updates'] * 1024 / 1e6:.1f} million at b = 1024" in answer
    assert f"{runs['1024']['updates']} at b = 1024" in answer


def test_the_batchnorm_answer_says_what_the_losses_do() -> None:
    deep = shipped_numbers(figures.BATCHNORM_JSON)["loss_per_epoch"]["BNDeepNet"]
    answer = model_answer("q_bn_helped_or_hurt")
    assert "averages 0.48 (the mean over that epoch's" in answer and f"{deep['train'][0]:.2f}" == "0.48"
    late = deep["test"][3:]
    assert 0.07 <= min(late) and max(late) <= 0.09 and "between 0.07\nand 0.09 from the fourth epoch" in answer


def test_the_figures_travel_inside_the_notebook() -> None:
    import base64

    import nbformat

    for path in (cfg.SOURCE_NOTEBOOK, cfg.RELEASE_NOTEBOOK):
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]
        assert not any("](figures/" in c.source for c in cells), f"{path.name}: a figure linked by path"
        shown = {m for c in cells for m in figures.FIGURE_LINK.findall(c.source)}
        assert shown == {figures.MINIBATCH_PNG, figures.BATCHNORM_PNG, figures.MOMENTUM_PNG}
        for cell in cells:
            for name in figures.FIGURE_LINK.findall(cell.source):
                embedded = base64.b64decode(cell.attachments[name]["image/png"])
                assert embedded == (figures.FIGURES_DIR / name).read_bytes(), f"{path.name}: {name} is stale"
