"""The grader's convergence runs on each device of this machine, and what a run's time is spent on.

    python benchmarks/convergence.py                # cuda (when there is one) and cpu, side by side
    python benchmarks/convergence.py --repeats 1    # a smoke run
    python benchmarks/convergence.py --profile      # also torch.profiler's view of one epoch per device

The hidden tests train small networks with the notebook's ``short_training_run`` (5 epochs of the
5,000-image subset, batch 64: 395 optimizer steps). On a GPU such a run is bound by the host, not
arithmetic: each step dispatches about 78 small kernels (BNDeepNet, measured on an H200). This prints, per device and network, the median
seconds of one run with the notebook's own ``train_epoch`` and with variants of the loop, so that a
remedy is chosen on numbers, side by side in one process:

- ``notebook``: the source notebook's code as it stands (``loss.item()`` after every step, a
  host-device synchronisation each);
- ``sum on device``: the losses summed on the device, read once per epoch;
- ``fused SGD``: ``torch.optim.SGD(..., fused=True)``, one kernel per step for all parameters.

The variants change only the benchmark's copy of the namespace, never the notebook. The networks
and the data come from the source notebook (``autograder.notebook_code.load_namespace``). The last
line is ``cuda/cpu <ratio>``: the notebook's convergence runs on the GPU over the same runs on this
machine's CPUs (target: at most 1).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: import the project's modules

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from autograder.notebook_code import load_namespace  # noqa: E402

MODELS = ["Net", "BNShallowNet", "DeepNet", "BNDeepNet"]


def sum_on_device(ns: dict[str, Any]) -> Callable:
    """``train_epoch`` summing the losses on the device and reading them once, at the epoch's end."""
    def train_epoch(model, optimizer, images, labels, batch_size, generator):
        model.train()
        total, steps = torch.zeros((), device=images.device), 0
        for x, y in ns["minibatches"](images, labels, batch_size, generator):
            optimizer.zero_grad()
            loss = F.nll_loss(model(x), y)
            loss.backward()
            optimizer.step()
            total, steps = total + loss.detach(), steps + 1
        return total.item() / steps
    return train_epoch


def move_data(ns: dict[str, Any], device: torch.device) -> None:
    """Point the namespace's ``DEVICE`` and data at ``device`` (its functions read these globals)."""
    ns["DEVICE"] = device
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        ns[name] = ns[name].to(device)


def seconds_of(run: Callable[[], Any], device: torch.device, repeats: int) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls after one warm-up call (lazy CUDA module loading), and
    the last call's result."""
    result = run()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def variants(ns: dict[str, Any]) -> dict[str, tuple[Callable, Callable | None]]:
    """name -> (train_epoch, make_optimizer or None for the notebook's SGD)."""
    cfg = ns["CONVERGENCE"]
    notebook = ns["train_epoch"]

    def fused(params):
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], fused=True)

    return {"notebook": (notebook, None), "sum on device": (sum_on_device(ns), None), "fused SGD": (notebook, fused)}


def profile_epoch(ns: dict[str, Any], device: torch.device) -> None:
    """torch.profiler's table of one BNDeepNet epoch (the notebook's loop), by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    cfg = ns["CONVERGENCE"]
    torch.manual_seed(0)
    model = ns["BNDeepNet"]().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
    generator = torch.Generator().manual_seed(0)
    args = (model, optimizer, ns["train_images"], ns["train_labels"], cfg["batch_size"], generator)
    ns["train_epoch"](*args)  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        ns["train_epoch"](*args)
    steps = -(-len(ns["train_labels"]) // cfg["batch_size"])
    events = prof.key_averages()
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
    print(f"\nprofile of one BNDeepNet epoch on {device} ({steps} steps): {launches / steps:.1f} kernel launches per step")
    print(events.table(sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=40))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell of the table (median)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's table of one epoch per device")
    args = parser.parse_args(argv)
    ns = load_namespace()
    devices = ([torch.device("cuda")] if torch.cuda.is_available() else []) + [torch.device("cpu")]
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"torch {torch.__version__}; GPU: {name}; {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads")
    print(f"one convergence run: {ns['CONVERGENCE']}, seconds (median of {args.repeats} after a warm-up)")
    notebook_total: dict[str, float] = {}
    for device in devices:
        move_data(ns, device)
        table = variants(ns)
        print(f"\n{device.type:5s} {'network':14s}" + "".join(f"{v:>15s}" for v in table) + "   test accuracy")
        notebook_train_epoch = ns["train_epoch"]
        for model in MODELS:
            cells, accuracy = [], None
            for variant, (train_epoch, make_optimizer) in table.items():
                ns["train_epoch"] = train_epoch
                try:
                    seconds, (loss, acc) = seconds_of(
                        lambda: ns["short_training_run"](ns[model], make_optimizer), device, args.repeats)
                except RuntimeError as error:  # a fused kernel this build lacks
                    cells.append(f"{'n/a':>15s}")
                    print(f"  ({variant} on {device}: {error})", file=sys.stderr)
                    continue
                finally:
                    ns["train_epoch"] = notebook_train_epoch
                cells.append(f"{seconds:15.3f}")
                if variant == "notebook":
                    notebook_total[device.type] = notebook_total.get(device.type, 0.0) + seconds
                    accuracy = acc
            print(f"{device.type:5s} {model:14s}" + "".join(cells) + f"   {100 * accuracy:.1f} %")
        if args.profile:
            profile_epoch(ns, device)
    if "cuda" in notebook_total:
        print(f"\nnotebook, all {len(MODELS)} networks: cuda {notebook_total['cuda']:.2f} s, cpu {notebook_total['cpu']:.2f} s")
        print(f"cuda/cpu {notebook_total['cuda'] / notebook_total['cpu']:.2f}")
    else:
        print(f"\nno GPU here: cpu, all {len(MODELS)} networks {notebook_total['cpu']:.2f} s")


if __name__ == "__main__":
    main()
