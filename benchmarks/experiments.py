"""Time the tutorial's two experiments in its original pipeline and in this project's, side by side.

    python benchmarks/experiments.py              # full MNIST: 7 batch sizes x 3 epochs, 4 networks x 10 epochs
    python benchmarks/experiments.py --quick      # smoke run on the shipped subset, under a minute
    python benchmarks/experiments.py --threads 1  # torch intra-op threads, the same for both sides
    python benchmarks/experiments.py --passes 3   # each row's fastest of 3 passes, on a shared machine

Original: the CIS-522 W4 Tutorial 1 code (Exercise 1.2 ``main``/``train``/``test`` and
``bn_eval``), rewritten plainly here: a ``DataLoader`` over ``torchvision.datasets.MNIST`` with
the per-sample transform ``Compose([ToTensor(), Normalize((0.1307,), (0.3081,))])``, no worker
processes on a CPU (one on CUDA, as the tutorial), test batches of 1000, a test after every
epoch. Project: the notebook's own functions (``load_mnist``, ``train_epoch``, ``evaluate``,
``compare_batchnorm``) from :func:`autograder.notebook_code.load_namespace`, with whole splits
held as tensors on the device. The networks come from the notebook for both sides.

Both sides read the same images (the four official files from the folder that ``$MNIST_DIR`` names
when present, else the subset in ``course_config.DATA_DIR``), in one process, with the same torch
threads, seeds and work: the sweep trains each batch size for a fixed number of epochs (the
notebook's ``batch_size_sweep`` stops on wall time instead, which a timing cannot use), and both
sides test after every epoch. Changes from the tutorial, none of which costs measurable time:
its progress prints are dropped; the training set is shuffled on the CPU too (the tutorial
shuffles only on CUDA) with one ``randperm`` per epoch from a seeded generator, like the notebook's
``minibatches``, so that both sides see the same minibatches and ``Net``, which has no dropout,
should reach nearly the same accuracy on both; ``train`` returns the mean minibatch loss (the
tutorial divides the sum by the number of images).

The last line printed is ``speedup <total original seconds / total project seconds>``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: import the project's modules

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader, Sampler  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402

import course_config as cfg  # noqa: E402
from autograder.authoring.figures import BN_MODELS, FULL, official_mnist_root, use_mnist_root  # noqa: E402
from autograder.data import configured_official_dir  # noqa: E402
from autograder.notebook_code import load_namespace  # noqa: E402

# The tutorial's args (also the defaults of the notebook's experiment functions).
LR, MOMENTUM, SEED = 0.01, 0.9, 1
BN_BATCH_SIZE, TEST_BATCH_SIZE = 64, 1000
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@dataclass(frozen=True)
class Plan:
    """How much work each experiment does."""

    batch_sizes: tuple[int, ...]
    sweep_epochs: int
    bn_epochs: int
    full_mnist: bool  # the official 60,000/10,000 images (when present), or the shipped subset


FULL_PLAN = Plan(batch_sizes=FULL.batch_sizes, sweep_epochs=3, bn_epochs=FULL.bn_epochs, full_mnist=True)
QUICK_PLAN = Plan(batch_sizes=(64, 512), sweep_epochs=1, bn_epochs=1, full_mnist=False)


@dataclass
class Row:
    """One timed run of both sides: seconds and final test accuracy (a fraction) of each."""

    experiment: str  # "sweep" or "batch norm"
    name: str
    original_s: float
    project_s: float
    original_accuracy: float
    project_accuracy: float


HEADER = f"  {'':25s} {'original':>9s} {'project':>9s} {'ratio':>8s}   test accuracy % (original, project)"


# --- The original pipeline -------------------------------------------------------------------

class SeededShuffle(Sampler[int]):
    """Each epoch, the order ``torch.randperm(n, generator=generator)``, as the notebook's ``minibatches``.

    (``RandomSampler`` draws a second, empty permutation per epoch, which would shift the order
    of every later epoch away from the notebook's.)
    """

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.generator = n, generator

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.n, generator=self.generator).tolist())

    def __len__(self) -> int:
        return self.n


def original_loaders(root: Path, batch_size: int, device: torch.device, seed: int) -> tuple[DataLoader, DataLoader]:
    """The tutorial's train and test loaders over ``<root>/MNIST/raw``, with its per-sample transform."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    extra = {"num_workers": 1, "pin_memory": True} if device.type == "cuda" else {}
    train_set = datasets.MNIST(str(root), train=True, download=False, transform=transform)
    test_set = datasets.MNIST(str(root), train=False, download=False, transform=transform)
    sampler = SeededShuffle(len(train_set), torch.Generator().manual_seed(seed))
    return (DataLoader(train_set, batch_size=batch_size, sampler=sampler, **extra),
            DataLoader(test_set, batch_size=TEST_BATCH_SIZE, **extra))


def original_train(model: torch.nn.Module, device: torch.device, loader: DataLoader, optimizer: torch.optim.Optimizer) -> float:
    """The tutorial's ``train``: one epoch over ``loader``; returns the mean minibatch loss."""
    model.train()
    total = 0.0
    for data, target in loader:
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        total += loss.item()
        loss.backward()
        optimizer.step()
    return total / len(loader)


def original_test(model: torch.nn.Module, device: torch.device, loader: DataLoader) -> tuple[float, float]:
    """The tutorial's ``test``: returns (mean test loss, accuracy as a fraction)."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            loss += F.nll_loss(output, target, reduction="sum").item()
            correct += (output.argmax(dim=1) == target).sum().item()
    return loss / len(loader.dataset), correct / len(loader.dataset)


def original_run(model_class: Callable[[], torch.nn.Module], root: Path, device: torch.device,
                 batch_size: int, epochs: int, seed: int = SEED) -> tuple[float, float]:
    """The tutorial's ``main``/``bn_eval``: fresh loaders and model, train and test each epoch.

    Returns the final (test loss, test accuracy).
    """
    torch.manual_seed(seed)
    train_loader, test_loader = original_loaders(root, batch_size, device, seed)
    model = model_class().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    for _ in range(epochs):
        original_train(model, device, train_loader, optimizer)
        result = original_test(model, device, test_loader)
    return result


# --- The project's pipeline ------------------------------------------------------------------

def project_sweep_run(ns: dict[str, Any], batch_size: int, epochs: int, seed: int = SEED) -> tuple[float, float]:
    """One batch size of the notebook's ``batch_size_sweep``, for ``epochs`` epochs instead of a wall time.

    Tests after every epoch, as the tutorial's ``main`` does; returns the final (test loss, accuracy).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = ns["Net"]().to(ns["DEVICE"])
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    for _ in range(epochs):
        ns["train_epoch"](model, optimizer, ns["train_images"], ns["train_labels"], batch_size, generator)
        result = ns["evaluate"](model, ns["test_images"], ns["test_labels"])
    return result


@contextlib.contextmanager
def recording(ns: dict[str, Any], name: str) -> Iterator[list[Any]]:
    """Within the block, every call of ``ns[name]`` also appends its result to the yielded list.

    The notebook's functions look their helpers up in ``ns`` at call time, so this reads what
    ``compare_batchnorm`` computes without copying it.
    """
    original, results = ns[name], []

    def recorded(*args: Any, **kwargs: Any) -> Any:
        results.append(original(*args, **kwargs))
        return results[-1]

    ns[name] = recorded
    try:
        yield results
    finally:
        ns[name] = original


def project_batchnorm_run(ns: dict[str, Any], name: str, epochs: int) -> tuple[float, float]:
    """The notebook's ``compare_batchnorm`` on one network; returns its final (test loss, accuracy).

    ``compare_batchnorm`` seeds each network afresh, so one call per network trains exactly what
    one call with all four does, and each network gets its own time.
    """
    with recording(ns, "evaluate") as evaluations:
        ns["compare_batchnorm"]([ns[name]], epochs=epochs, batch_size=BN_BATCH_SIZE, lr=LR, momentum=MOMENTUM, seed=SEED)
    return evaluations[-1]


# --- Both, timed ---------------------------------------------------------------------------

def timed(run: Callable[[], Any]) -> tuple[Any, float]:
    """``run()`` and the seconds it took."""
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def sweep_rows(ns: dict[str, Any], root: Path, plan: Plan) -> list[Row]:
    """The batch-size sweep, one batch size at a time, project first (it pays any warm-up)."""
    rows = []
    for batch_size in plan.batch_sizes:
        (_, project_acc), project_s = timed(lambda: project_sweep_run(ns, batch_size, plan.sweep_epochs))
        (_, original_acc), original_s = timed(
            lambda: original_run(ns["Net"], root, ns["DEVICE"], batch_size, plan.sweep_epochs))
        rows.append(Row("sweep", f"batch size {batch_size}", original_s, project_s, original_acc, project_acc))
        print_row(rows[-1])
    return rows


def batchnorm_rows(ns: dict[str, Any], root: Path, plan: Plan) -> list[Row]:
    """The batch-norm comparison, one network at a time, project first."""
    rows = []
    for name in BN_MODELS:
        (_, project_acc), project_s = timed(lambda: project_batchnorm_run(ns, name, plan.bn_epochs))
        (_, original_acc), original_s = timed(
            lambda: original_run(ns[name], root, ns["DEVICE"], BN_BATCH_SIZE, plan.bn_epochs))
        rows.append(Row("batch norm", name, original_s, project_s, original_acc, project_acc))
        print_row(rows[-1])
    return rows


def one_pass(ns: dict[str, Any], root: Path, plan: Plan, number: int) -> list[Row]:
    """Both experiments once, each row printed as soon as it is measured."""
    print(f"\npass {number} ({machine_load()})\n{HEADER}", flush=True)
    return sweep_rows(ns, root, plan) + batchnorm_rows(ns, root, plan)


def fastest(passes: list[list[Row]]) -> list[Row]:
    """Per row, each side's smallest time over the passes: other work on the machine only adds time.

    The accuracies are those of the first pass (the seeds make every pass train the same).
    """
    return [Row(runs[0].experiment, runs[0].name, min(r.original_s for r in runs), min(r.project_s for r in runs),
                runs[0].original_accuracy, runs[0].project_accuracy) for runs in zip(*passes)]


def print_row(row: Row) -> None:
    """One line of the results table."""
    print(f"  {row.experiment:10s} {row.name:14s} {row.original_s:9.2f} {row.project_s:9.2f} "
          f"{row.original_s / row.project_s:7.2f}x   {100 * row.original_accuracy:6.2f} {100 * row.project_accuracy:6.2f}",
          flush=True)


def print_total(name: str, rows: list[Row]) -> tuple[float, float]:
    """Print and return the (original, project) seconds of ``rows``."""
    original, project = sum(r.original_s for r in rows), sum(r.project_s for r in rows)
    print(f"  {name:25s} {original:9.2f} {project:9.2f} {original / project:7.2f}x", flush=True)
    return original, project


def machine_load() -> str:
    """The 1-minute load average against the CPU count: other work on the machine skews timings."""
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"


@contextlib.contextmanager
def mnist_root(full: bool) -> Iterator[Path]:
    """The torchvision root both sides read: the official files when asked for and present."""
    official = configured_official_dir()
    if full and official is not None and (official / "train-images-idx3-ubyte.gz").is_file():
        with official_mnist_root() as root:
            yield root
    else:
        yield cfg.DATA_DIR


def benchmark(plan: Plan, passes: int = 1) -> float:
    """Run both experiments both ways ``passes`` times, print the tables; return the speed-up.

    The speed-up is total original seconds / total project seconds (the project's one
    ``load_mnist`` of both splits included), each row timed by its fastest pass.
    """
    ns = load_namespace()
    with mnist_root(plan.full_mnist) as root:
        _, load_s = timed(lambda: use_mnist_root(ns, root))  # the project loads each split once
        print(f"\nMNIST: {len(ns['train_labels'])} training and {len(ns['test_labels'])} test images from {root}; "
              f"device {ns['DEVICE']}, {torch.get_num_threads()} torch threads, seed {SEED}, seconds per run\n"
              f"sweep: Net, {plan.sweep_epochs} epochs per batch size, lr {LR}, momentum {MOMENTUM}\n"
              f"batch norm: {plan.bn_epochs} epochs, batch size {BN_BATCH_SIZE}, lr {LR}, momentum {MOMENTUM}")
        rows = fastest([one_pass(ns, root, plan, number) for number in range(1, passes + 1)])
    if passes > 1:
        print(f"\nfastest of {passes} passes\n{HEADER}")
        for row in rows:
            print_row(row)
    print("\ntotals")
    sweep_o, sweep_p = print_total("sweep", [r for r in rows if r.experiment == "sweep"])
    bn_o, bn_p = print_total("batch norm", [r for r in rows if r.experiment == "batch norm"])
    print(f"  {'load_mnist (project only)':25s} {0.0:9.2f} {load_s:9.2f}")
    original, project = sweep_o + bn_o, sweep_p + bn_p + load_s
    print(f"  {'all':25s} {original:9.2f} {project:9.2f} {original / project:7.2f}x")
    gap = max(abs(r.original_accuracy - r.project_accuracy) for r in rows)
    print(f"largest test accuracy difference between the sides: {100 * gap:.2f} points\n"
          f"at the end: {machine_load()}")
    if os.getloadavg()[0] > torch.get_num_threads() + 0.5:
        print("warning: other work shared the CPUs; rerun on a quiet machine or with --passes 3")
    return original / project


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the benchmark and print ``speedup <ratio>`` last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: subset, 2 batch sizes, 1 epoch")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads for both sides")
    parser.add_argument("--passes", type=int, default=1,
                        help="run everything this many times and keep each row's fastest (for a shared machine)")
    args = parser.parse_args(argv)
    if args.passes < 1 or args.threads < 1:
        parser.error("--passes and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    ratio = benchmark(QUICK_PLAN if args.quick else FULL_PLAN, passes=args.passes)
    print(f"speedup {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
