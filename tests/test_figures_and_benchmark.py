"""Smoke tests of the figure generator and the pipeline benchmark, in their quick modes."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import course_config as cfg
from autograder import figures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PNG_BYTES = 80_000  # the figures ship with the notebook: keep them small


def test_quick_figures_writes_three_small_pngs(tmp_path: Path) -> None:
    paths = figures.make_figures(tmp_path, quick=True)
    assert sorted(p.name for p in paths) == sorted([figures.MINIBATCH_PNG, figures.BATCHNORM_PNG, figures.MOMENTUM_PNG])
    for path in paths:
        assert path.parent == tmp_path
        content = path.read_bytes()
        assert content.startswith(PNG_SIGNATURE), f"{path.name} is not a PNG"
        assert 1_000 < len(content) < MAX_PNG_BYTES, f"{path.name}: {len(content)} bytes"


def test_quick_figures_refuse_to_replace_the_shipped_ones() -> None:
    with pytest.raises(ValueError, match="quick"):
        figures.make_figures(figures.FIGURES_DIR, quick=True)


def test_momentum_path_follows_the_notebook_rule() -> None:
    # beta = 0 with a zero buffer is plain gradient descent: w <- w - lr * c * w, per coordinate.
    bowl = figures.Bowl(steps=3)

    def momentum_update(w, grad, m, lr, beta):
        m_new = grad + beta * m
        return w - lr * m_new, m_new

    path = figures.descent_path(momentum_update, bowl, beta=0.0)
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
