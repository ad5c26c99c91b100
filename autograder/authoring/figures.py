"""Draw the three figures that the week-4 notebook's markdown shows, into ``figures/``.

Beside each PNG goes a JSON file of the same name: the numbers the figure shows. The notebook's text and model answers quote them, and the tests check
that they agree, so that the text cannot claim what the figure does not show.

``minibatch_size.png`` and ``batchnorm.png`` are made by the notebook's own experiment code
(``batch_size_sweep``/``plot_batch_size_sweep`` and ``compare_batchnorm``/``plot_batchnorm_curves``,
loaded with :func:`autograder.notebook_code.load_namespace`), run on all 60,000 official MNIST
training images and the 10,000 test images, as the markdown says. ``momentum.png`` replaces the
tutorial's web GIFs: trajectories of the notebook's ``momentum_update`` on an elongated quadratic
bowl, for beta 0 (plain gradient descent), 0.9 and 0.99.

    python -m autograder.authoring.figures            # all three into source/w4_optimization/figures (about 1 min on 2 CPU cores)
    python -m autograder.authoring.figures --quick    # smoke run on the shipped subset, into out/figures-quick

From Python: ``make_figures(out_dir, quick=False) -> [paths]``. The full run needs the official
files in the folder that ``$MNIST_DIR`` names; the sweep is timed (3 s per batch size), so its
accuracies vary a little from run to run and from machine to machine.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

import course_config as cfg
from autograder.errors import InputError
from autograder import data
from autograder.notebook_code import load_namespace

FIGURES_DIR = cfg.SOURCE_DIR / cfg.ASSIGNMENT_ID / "figures"  # the notebook's markdown links figures/*.png
QUICK_OUT_DIR = cfg.ROOT / "out" / "figures-quick"  # out/ is git-ignored: smoke output never replaces the real figures
MINIBATCH_PNG, BATCHNORM_PNG, MOMENTUM_PNG = "minibatch_size.png", "batchnorm.png", "momentum.png"
# the numbers each figure shows, written beside it: the notebook's text quotes them, tests compare
MINIBATCH_JSON, BATCHNORM_JSON, MOMENTUM_JSON = "minibatch_size.json", "batchnorm.json", "momentum.json"
MOMENTUM_STEPS = (10, 40)  # the steps at which the momentum figure reports |w1| and |w2|
DPI = 100  # labels stay readable at this size
PALETTE_COLORS = 64  # a palette PNG is 3-4 times smaller than RGBA and looks the same for line plots
BN_MODELS = ("Net", "BNShallowNet", "DeepNet", "BNDeepNet")  # the order of the tutorial's plot


@dataclass(frozen=True)
class ExperimentSettings:
    """How big the two training experiments are."""

    batch_sizes: tuple[int, ...]
    seconds_per_size: float  # wall time per batch size in the sweep
    bn_epochs: int
    full_mnist: bool  # the official 60,000/10,000 images, or the subset shipped with the notebook


# The notebook's markdown promises these numbers for the figures (its experiment cells use the same).
FULL = ExperimentSettings(batch_sizes=(8, 16, 32, 64, 256, 512, 1024), seconds_per_size=3.0, bn_epochs=10, full_mnist=True)
# About the notebook's grading-time version (2 epochs, not 1, so that the curves are lines): seconds.
QUICK = ExperimentSettings(batch_sizes=(64, 512), seconds_per_size=0.05, bn_epochs=2, full_mnist=False)


@dataclass(frozen=True)
class Bowl:
    """The quadratic f(w) = 0.5 * sum(curvatures * w**2) and the descent run on it.

    The notebook's ``BOWL`` holds the values (its students' cell draws the same paths):
    curvatures (1, 100), a ravine 10 times longer than wide; learning rate 0.0198, so that
    lr * 100 = 1.98 is just under 2: across the ravine plain descent flips sign every step and
    shrinks by only |1 - 1.98| = 0.98 a step, while with beta = 0.9 the error shrinks by
    sqrt(0.9) = 0.95 a step and turns about a quarter circle, so it crosses half as often and
    settles sooner, and along w1 it moves about 1 / (1 - beta) = 10 times as far per step.
    """

    curvatures: tuple[float, float]
    start: tuple[float, float]
    lr: float
    steps: int
    betas: tuple[float, float, float] = (0.0, 0.9, 0.99)  # one panel each; the fourth panel shows f

    @classmethod
    def of_notebook(cls, namespace: dict[str, Any]) -> "Bowl":
        return cls(**{key: tuple(v) if isinstance(v, list) else v for key, v in namespace["BOWL"].items()})


# --- Full MNIST for the notebook's functions ---------------------------------------------------

@contextlib.contextmanager
def official_mnist_root(source: Path | None = None) -> Iterator[Path]:
    """Yield a temporary torchvision root holding the four official MNIST files, uncompressed.

    Reads (and md5-checks) ``<source>/*.gz``; writes ``<root>/MNIST/raw/<stem>``, the layout that
    ``torchvision.datasets.MNIST(root)`` loads only when all four files are there. The folder is
    deleted when the block ends.
    """
    with tempfile.TemporaryDirectory(prefix="mnist-full-") as tmp:
        root = Path(tmp)
        raw = data.raw_dir(root)
        raw.mkdir(parents=True)
        for stem in data.OFFICIAL_MD5:
            (raw / stem).write_bytes(data.write_idx(data.load_official(stem, source)))
        yield root


def use_mnist_root(namespace: dict[str, Any], root: Path) -> None:
    """Point the notebook namespace at ``root`` and reload its data with its own ``load_mnist``.

    Changes ``DATA_ROOT``, ``train_images``, ``train_labels``, ``test_images`` and ``test_labels``
    in ``namespace``: the notebook's functions read those globals when they are called.
    """
    namespace["DATA_ROOT"] = str(root)
    namespace["train_images"], namespace["train_labels"] = namespace["load_mnist"](train=True)
    namespace["test_images"], namespace["test_labels"] = namespace["load_mnist"](train=False)


@contextlib.contextmanager
def experiment_data(namespace: dict[str, Any], full_mnist: bool) -> Iterator[Path]:
    """Within the block, ``namespace`` holds the full official MNIST (or keeps the shipped subset).

    Yields the torchvision root that the namespace's data came from.
    """
    if not full_mnist:
        yield cfg.DATA_DIR  # load_namespace already loaded it
        return
    with official_mnist_root() as root:
        use_mnist_root(namespace, root)
        yield root


# --- The three figures -------------------------------------------------------------------------

def save(fig: Any, path: Path) -> Path:
    """Write ``fig`` as a palette PNG at ``DPI`` and close it; return ``path``."""
    import matplotlib.pyplot as plt
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    image = Image.open(buffer).convert("RGB").quantize(colors=PALETTE_COLORS, method=Image.Quantize.MEDIANCUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="png", optimize=True)  # PIL writes no timestamp: same pixels, same bytes
    return path


def minibatch_figure(namespace: dict[str, Any], settings: ExperimentSettings) -> tuple[Any, dict[str, Any]]:
    """Run the notebook's batch-size sweep on the namespace's data; return (its plot, its numbers)."""
    batch_sizes = list(settings.batch_sizes)
    accuracies, updates = namespace["batch_size_sweep"](batch_sizes, settings.seconds_per_size)
    for b, a, u in zip(batch_sizes, accuracies, updates):
        print(f"batch size {b:5d}: {u:5d} updates, test accuracy {100 * a:.1f} %")
    numbers = {"seconds_per_size": settings.seconds_per_size, "full_mnist": settings.full_mnist,
               "by_batch_size": {str(b): {"test_accuracy": round(float(a), 4), "updates": int(u)}
                                 for b, a, u in zip(batch_sizes, accuracies, updates)}}
    return namespace["plot_batch_size_sweep"](batch_sizes, accuracies, updates), numbers


def batchnorm_figure(namespace: dict[str, Any], settings: ExperimentSettings) -> tuple[Any, dict[str, Any]]:
    """Train the four networks with the notebook's ``compare_batchnorm``; return (its plot, the losses)."""
    curves = namespace["compare_batchnorm"]([namespace[name] for name in BN_MODELS], epochs=settings.bn_epochs)
    losses = {}
    for name, (train_losses, test_losses) in curves.items():
        print(f"{name:13s} final train loss {train_losses[-1]:.3f}, test loss {test_losses[-1]:.3f}")
        losses[name] = {"train": [round(float(v), 4) for v in train_losses],
                        "test": [round(float(v), 4) for v in test_losses]}
    numbers = {"epochs": settings.bn_epochs, "full_mnist": settings.full_mnist, "loss_per_epoch": losses}
    return namespace["plot_batchnorm_curves"](curves), numbers


def descent_paths(bowl_path: Callable, momentum_update: Callable, bowl: Bowl) -> dict[float, np.ndarray]:
    """Per beta, the points visited on ``bowl`` by ``momentum_update``, traced by the notebook's
    ``bowl_path`` (arrays of shape ``(bowl.steps + 1, 2)``, the start included)."""
    return {beta: bowl_path(momentum_update, beta, bowl.curvatures, bowl.start, bowl.lr, bowl.steps)
            for beta in bowl.betas}


def bowl_value(bowl: Bowl, points: np.ndarray) -> np.ndarray:
    """f at each point (the last axis holds the two coordinates)."""
    return 0.5 * (np.asarray(bowl.curvatures) * points**2).sum(axis=-1)


def momentum_numbers(paths: dict[float, np.ndarray], bowl: Bowl) -> dict[str, dict[str, float]]:
    """Per beta: |w1| and |w2| after each of ``MOMENTUM_STEPS`` steps and the crossings of the
    ravine's floor (sign changes of w2) during the last of them: what the text claims."""
    last = MOMENTUM_STEPS[-1]
    numbers = {}
    for beta, path in paths.items():
        entry = {f"abs_w{axis + 1}_after_{step}": round(float(abs(path[step, axis])), 4)
                 for step in MOMENTUM_STEPS for axis in (0, 1)}
        entry[f"crossings_in_{last}"] = int(np.sum(np.sign(path[:last, 1]) != np.sign(path[1:last + 1, 1])))
        numbers[str(beta)] = entry
    return numbers


def momentum_figure(paths: dict[float, np.ndarray], bowl: Bowl) -> tuple[Any, dict[str, Any]]:
    """Contour plot of ``bowl`` with one descent path per beta, and f against the step;
    return (the figure, its numbers)."""
    import matplotlib.pyplot as plt

    numbers = momentum_numbers(paths, bowl)
    early, late = MOMENTUM_STEPS
    x0, y0 = abs(bowl.start[0]) * 1.15, abs(bowl.start[1]) * 1.6
    grid = np.stack(np.meshgrid(np.linspace(-x0, x0, 300), np.linspace(-y0, y0, 200)), axis=-1)
    levels = bowl_value(bowl, np.asarray(bowl.start)) * np.geomspace(1e-3, 1.5, 9)
    colors = dict(zip(bowl.betas, ["tab:blue", "tab:orange", "tab:purple"]))
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.8))
    for ax, beta in zip(axes.flat, bowl.betas):
        path, n = paths[beta], numbers[str(beta)]
        ax.contour(grid[..., 0], grid[..., 1], bowl_value(bowl, grid), levels=levels, colors="0.75", linewidths=0.8)
        ax.plot(path[:, 0], path[:, 1], marker=".", markersize=3, linewidth=0.9, color=colors[beta])
        ax.plot(*bowl.start, marker="o", color="black")
        ax.plot(0, 0, marker="*", markersize=12, color="tab:red")
        label = "plain gradient descent (beta = 0)" if beta == 0 else f"momentum, beta = {beta}"
        ax.set_title(f"{label}\n|w$_2$| {n[f'abs_w2_after_{early}']:.2f} after {early} steps, "
                     f"{n[f'abs_w2_after_{late}']:.2f} after {late}; {n[f'crossings_in_{late}']} crossings; "
                     f"|w$_1$| {n[f'abs_w1_after_{late}']:.2f} after {late}", fontsize=9)
        ax.set_xlim(-x0, x0)
        ax.set_ylim(-y0, y0)
        ax.set_xlabel(f"$w_1$ (curvature {bowl.curvatures[0]:g})")
        ax.set_ylabel(f"$w_2$ (curvature {bowl.curvatures[1]:g})")
    ax_loss = axes.flat[len(bowl.betas)]
    for beta, path in paths.items():
        ax_loss.plot(bowl_value(bowl, path), label=f"beta = {beta}", color=colors[beta])
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("f(w)")
    ax_loss.set_title(f"loss against step, learning rate {bowl.lr}", fontsize=10)
    ax_loss.legend()
    c1, c2 = bowl.curvatures
    fig.suptitle(f"f(w) = ({c1:g} w$_1^2$ + {c2:g} w$_2^2$) / 2, start at the black dot, minimum at the red star",
                 fontsize=11)
    fig.tight_layout()
    settings = {"curvatures": list(bowl.curvatures), "start": list(bowl.start), "lr": bowl.lr, "steps": bowl.steps}
    return fig, {"bowl": settings, "by_beta": numbers}


def save_numbers(numbers: dict[str, Any], path: Path) -> Path:
    """Write a figure's numbers as JSON beside it (sorted keys: the same numbers, the same bytes)."""
    path.write_text(json.dumps(numbers, indent=1, sort_keys=True) + "\n")
    return path


def make_figures(out_dir: Path = FIGURES_DIR, quick: bool = False) -> list[Path]:
    """Run the experiments and write the three PNGs into ``out_dir``; return their paths.

    ``quick`` runs the notebook's grading-time sizes on the shipped subset (seconds, for tests);
    it refuses to write into ``FIGURES_DIR``, which holds the figures students see.
    """
    out_dir = Path(out_dir)
    if quick and out_dir.resolve() == FIGURES_DIR.resolve():
        raise InputError(f"{out_dir}: quick figures are smoke-test output; give another out_dir (e.g. {QUICK_OUT_DIR})")
    settings = QUICK if quick else FULL
    namespace = load_namespace()
    with experiment_data(namespace, settings.full_mnist):
        figure, numbers = minibatch_figure(namespace, settings)
        paths = [save(figure, out_dir / MINIBATCH_PNG), save_numbers(numbers, out_dir / MINIBATCH_JSON)]
        figure, numbers = batchnorm_figure(namespace, settings)
        paths += [save(figure, out_dir / BATCHNORM_PNG), save_numbers(numbers, out_dir / BATCHNORM_JSON)]
    bowl = Bowl.of_notebook(namespace)
    figure, numbers = momentum_figure(descent_paths(namespace["bowl_path"], namespace["momentum_update"], bowl), bowl)
    paths += [save(figure, out_dir / MOMENTUM_PNG), save_numbers(numbers, out_dir / MOMENTUM_JSON)]
    return paths


FIGURE_LINK = re.compile(r"\]\((?:figures/|attachment:)(?P<name>[\w.-]+\.png)\)")


def embed_figures(notebook: Path = cfg.SOURCE_NOTEBOOK, folder: Path = FIGURES_DIR) -> bool:
    """Carry each figure a markdown cell shows as that cell's attachment (``attachment:<name>``), so
    that it shows wherever the notebook goes alone (Colab); return whether the notebook changed."""
    import base64

    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    before = nbformat.writes(nb)
    for cell in nb.cells:
        names = FIGURE_LINK.findall(cell.source) if cell.cell_type == "markdown" else []
        if names:
            cell.source = FIGURE_LINK.sub(lambda m: f"](attachment:{m['name']})", cell.source)
            cell["attachments"] = {name: {"image/png": base64.b64encode((folder / name).read_bytes()).decode()}
                                   for name in names}
    if nbformat.writes(nb) == before:
        return False
    notebook.write_text(nbformat.writes(nb) + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m autograder.authoring.figures [--quick] [--out DIR]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m autograder.authoring.figures", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run on the shipped subset (a few seconds)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder (default: {FIGURES_DIR.relative_to(cfg.ROOT)}, "
                             f"or {QUICK_OUT_DIR.relative_to(cfg.ROOT)} with --quick)")
    args = parser.parse_args(argv)
    out_dir = args.out or (QUICK_OUT_DIR if args.quick else FIGURES_DIR)
    try:
        paths = make_figures(out_dir, quick=args.quick)
    except (data.DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"{path} ({path.stat().st_size / 1000:.0f} kB)")
    if out_dir.resolve() == FIGURES_DIR.resolve() and embed_figures():
        print(f"{cfg.SOURCE_NOTEBOOK.relative_to(cfg.ROOT)}: figures embedded as attachments; run `release` next")
    return 0


if __name__ == "__main__":
    sys.exit(main())
