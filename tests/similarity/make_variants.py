"""Build independently written, correct submissions of W4_Tutorial1 for the similarity tests.

The example submissions and mutants all derive from one reference solution, so they are alike
by construction; these variants are what two students who never met would write. Each starts
from the release notebook, as a student does: every ``# YOUR CODE HERE`` /
``raise NotImplementedError()`` stub of a code answer is replaced, in order, by the variant's
block (indented as the stub was), and every *YOUR ANSWER HERE* by its own free-text answer. The
given code around the stubs stays as released. The variants differ from the reference and from
each other in structure (``nn.Sequential`` built in a loop vs ``nn.ModuleList`` with an explicit
forward; an accumulating loop vs ``map``; ``setdefault`` vs an explicit check), not only in names.

Written files (``tests/similarity/``): ``independent_sequential.ipynb``,
``independent_modulelist.ipynb``. Outputs are cleared, so the files are reproducible.

Usage, from the repository root::

    python tests/similarity/make_variants.py            # rewrite the committed notebooks
    python tests/similarity/make_variants.py --check    # exit 1 if they differ from what it builds
    python tests/similarity/make_variants.py --verify   # judge each variant with the source notebook's
                                                        # hidden tests, in this process (about 20 s)
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:  # run as a script, sys.path[0] is tests/similarity, not the repository
    sys.path.insert(0, str(REPO))

import course_config as cfg  # noqa: E402

STUB = "# YOUR CODE HERE\n{indent}raise NotImplementedError()"
ANSWER_STUB = "YOUR ANSWER HERE"

# variant name -> grade id -> the blocks that replace the cell's stubs, in order (or the free text)
VARIANTS: dict[str, dict[str, list[str] | str]] = {
    "independent_sequential": {
        "q_delivery_strategy": (
            "If every order arrives one slot late, each of the twelve people gives 2 stars, so 24 in total. "
            "Because nobody can give less than a single star, I would drop one order completely and bring "
            "the remaining eleven on schedule: 33 stars from them plus the 1 star minimum = 34. Good for "
            "the score, terrible for the person who never gets dinner."),
        "q_better_loss": (
            "Penalise the delay of each customer directly and make big delays count disproportionately, "
            "e.g. sum over customers of (minutes late)^2. Then abandoning one person (one enormous delay) "
            "costs far more than making everybody a little late."),
        "q_good_descent": (
            "Ideally it converges quickly without hand-tuning the learning rate, copes with ill-conditioned "
            "valleys without zig-zagging, doesn't stall at saddles, and every iteration is cheap enough to run "
            "on millions of samples."),
        "q_sgd_vs_minibatch_plot": (
            "With batch size 1 the loss curve is ragged, spiky updates everywhere, since a single sample's "
            "gradient is a poor estimate. Averaging over a minibatch lowers that variance, so its curve "
            "is much flatter and decreases steadily."),
        "mcq_minibatch": [
            "less_noisy_updates = True\ncomputationally_efficient = True\n"
            "increased_model_update_frequency = False\nmemory_efficient = False"],
        "ex1_memory": [
            "total = 0\nfor tensor in model.parameters():\n    total += tensor.numel()\nreturn total",
            "n_values = count_parameters(model) * (3 + batch_size)  # weights, grads, momentum, per-sample grads\n"
            "return n_values * bytes_per_value / 10**6",
            "megabytes_1 = training_memory_mb(Net(), 0)\nmegabytes_2 = training_memory_mb(Net(), 50)"],
        "q_convergence_vs_batch_size": (
            "The best accuracy in the fixed time budget is reached by intermediate batch sizes. Very small "
            "batches spend most of the time on per-step overhead and their gradients are noisy; huge batches "
            "are efficient per sample but only get a handful of parameter updates before time runs out, and "
            "we kept the learning rate fixed instead of increasing it with the batch."),
        "q_bn_learnable_ab": (
            "Pure standardisation would pin each unit to zero mean and unit variance, which may be exactly "
            "the wrong input range for the nonlinearity that follows. The learned gain and bias let every "
            "unit pick its own scale and offset, up to recovering the un-normalised activations."),
        "ex2_bn_models": [
            "self.layers = nn.Sequential(\n"
            "    nn.Flatten(),\n"
            "    nn.Linear(784, 128), nn.BatchNorm1d(128), nn.ReLU(),\n"
            "    nn.Dropout(0.5), nn.Linear(128, 10),\n"
            ")",
            "return F.log_softmax(self.layers(x), dim=1)",
            "sizes = [784, 128, 64, 32, 32]\n"
            "blocks = [nn.Flatten()]\n"
            "for n_in, n_out in zip(sizes[:-1], sizes[1:]):\n"
            "    blocks += [nn.Linear(n_in, n_out), nn.ReLU()]\n"
            "blocks += [nn.Dropout(0.5), nn.Linear(sizes[-1], 10)]\n"
            "self.layers = nn.Sequential(*blocks)",
            "return F.log_softmax(self.layers(x), dim=1)",
            "sizes = [784, 128, 64, 32, 32]\n"
            "blocks = [nn.Flatten()]\n"
            "for n_in, n_out in zip(sizes[:-1], sizes[1:]):\n"
            "    blocks += [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU()]\n"
            "blocks += [nn.Dropout(0.5), nn.Linear(sizes[-1], 10)]\n"
            "self.layers = nn.Sequential(*blocks)",
            "return F.log_softmax(self.layers(x), dim=1)"],
        "q_bn_helped_or_hurt": (
            "For the deep network batch norm mostly helped: it learned much faster in the first epoch and its "
            "test loss stayed lower, though plain DeepNet finally got a slightly lower training loss. For the "
            "shallow one there was no benefit, partly because BNShallowNet also uses dropout. Normalising keeps "
            "the signal well scaled through many layers; with one hidden layer that problem barely exists."),
        "ex3_momentum": [
            "velocity = beta * m + grad\nreturn w - lr * velocity, velocity",
            "for group in self.param_groups:\n"
            "    lr, beta = group[\"lr\"], group[\"beta\"]\n"
            "    for p in [q for q in group[\"params\"] if q.grad is not None]:\n"
            "        buf = self.state[p].setdefault(\"velocity\", torch.zeros_like(p))\n"
            "        new_p, self.state[p][\"velocity\"] = momentum_update(p, p.grad, buf, lr, beta)\n"
            "        p.copy_(new_p)"],
        "mcq_momentum": [
            "damps_oscillations = True\ncloser_to_minimum = True\n"
            "larger_beta_always_faster = False\nper_parameter_step_sizes = False"],
    },
    "independent_modulelist": {
        "q_delivery_strategy": (
            "Plan A, deliver in the order received: all 12 are 15 min late -> 2 stars each -> 24. "
            "Plan B: sacrifice a single customer (their rating bottoms out at 1) and serve the other "
            "eleven in time for 3 stars each -> 34. Plan B wins on stars but is clearly unfair."),
        "q_better_loss": (
            "I would use the maximum delay over all the customers, or a sum of squared delays. Either one "
            "prefers sharing a small delay among many people to leaving one person waiting for hours, unlike "
            "a rating that cannot go under one star."),
        "q_good_descent": (
            "Robust: works for many learning rates. Fast on flat plateaus but careful on steep slopes, "
            "damping oscillation in narrow ravines. Able to leave saddle points and bad local minima. "
            "Low memory and compute per update."),
        "q_sgd_vs_minibatch_plot": (
            "Single-example SGD: a very jittery loss, it jumps around a lot between updates. Mini-batch "
            "gradient descent: a smoother line going down more regularly, because the batch averages out "
            "the noise of individual examples (variance shrinks like one over the batch size)."),
        "mcq_minibatch": [
            "less_noisy_updates = True\ncomputationally_efficient = True\n"
            "increased_model_update_frequency = False\nmemory_efficient = False"],
        "ex1_memory": [
            "return sum(map(torch.numel, model.parameters()))",
            "params = count_parameters(model)\n"
            "stored = 3 * params + batch_size * params\n"
            "return stored * bytes_per_value / 1_000_000",
            "megabytes_1 = training_memory_mb(Net(), batch_size=0)\n"
            "megabytes_2 = training_memory_mb(Net(), batch_size=50)"],
        "q_convergence_vs_batch_size": (
            "Accuracy as a function of batch size looks like a hill. On the left, tiny batches: a GPU/CPU "
            "does little useful work per step and the steps wander. On the right, giant batches: few steps "
            "happen within the time limit and, with an unchanged learning rate, each step is not bigger, "
            "so learning is slow. The top of the hill is around a few dozen to a couple hundred."),
        "q_bn_learnable_ab": (
            "Without them batch norm would restrict every layer's outputs to a standard distribution, "
            "reducing what the model can express (for example a sigmoid would be stuck near its linear "
            "part). Scale a and shift b are trained, so the net can choose any mean and spread, even "
            "turning normalisation off by learning a = std and b = mean."),
        "ex2_bn_models": [
            "self.hidden = nn.Linear(28 * 28, 128)\n"
            "self.norm = nn.BatchNorm1d(128)\n"
            "self.drop = nn.Dropout(p=0.5)\n"
            "self.out = nn.Linear(128, 10)",
            "h = x.reshape(len(x), -1)\n"
            "h = torch.relu(self.norm(self.hidden(h)))\n"
            "return torch.log_softmax(self.out(self.drop(h)), dim=1)",
            "widths = (784, 128, 64, 32, 32)\n"
            "self.hidden = nn.ModuleList(nn.Linear(widths[i], widths[i + 1]) for i in range(4))\n"
            "self.drop = nn.Dropout(p=0.5)\n"
            "self.out = nn.Linear(32, 10)",
            "h = x.reshape(len(x), -1)\n"
            "for lin in self.hidden:\n"
            "    h = torch.relu(lin(h))\n"
            "return torch.log_softmax(self.out(self.drop(h)), dim=1)",
            "widths = (784, 128, 64, 32, 32)\n"
            "self.hidden = nn.ModuleList()\n"
            "self.norms = nn.ModuleList()\n"
            "for i in range(4):\n"
            "    self.hidden.append(nn.Linear(widths[i], widths[i + 1]))\n"
            "    self.norms.append(nn.BatchNorm1d(widths[i + 1]))\n"
            "self.drop = nn.Dropout(p=0.5)\n"
            "self.out = nn.Linear(32, 10)",
            "h = x.reshape(len(x), -1)\n"
            "for lin, bn in zip(self.hidden, self.norms):\n"
            "    h = torch.relu(bn(lin(h)))\n"
            "return torch.log_softmax(self.out(self.drop(h)), dim=1)"],
        "q_bn_helped_or_hurt": (
            "Deep pair: with BN the loss dropped right away in epoch one and the held-out loss remained the "
            "better one, although by the end the network without BN had the smaller training loss (BN's "
            "batch noise acts like regularisation). Shallow pair: BN did not help, and that comparison "
            "also mixes in dropout. Reason: deep stacks suffer from badly scaled activations and gradients, "
            "which BN fixes; a one-hidden-layer net has nothing to fix."),
        "ex3_momentum": [
            "m_next = torch.add(grad, m, alpha=beta)\n"
            "w_next = torch.sub(w, m_next, alpha=lr)\n"
            "return (w_next, m_next)",
            "for group in self.param_groups:\n"
            "    for param in group[\"params\"]:\n"
            "        if param.grad is None:\n"
            "            continue\n"
            "        st = self.state[param]\n"
            "        if \"buffer\" not in st:\n"
            "            st[\"buffer\"] = torch.zeros_like(param)\n"
            "        updated, st[\"buffer\"] = momentum_update(param, param.grad, st[\"buffer\"],\n"
            "                                                 lr=group[\"lr\"], beta=group[\"beta\"])\n"
            "        param.copy_(updated)"],
        "mcq_momentum": [
            "damps_oscillations = True\ncloser_to_minimum = True\n"
            "larger_beta_always_faster = False\nper_parameter_step_sizes = False"],
    },
}


def fill_code(source: str, blocks: list[str], where: str) -> str:
    """``source`` with its stubs replaced, in order, by ``blocks``, each indented as its stub."""
    for block in blocks:
        start = source.find("# YOUR CODE HERE\n")
        if start < 0:
            raise ValueError(f"{where}: more blocks than stubs in the release cell")
        indent = source[source.rfind("\n", 0, start) + 1:start]
        stub = STUB.format(indent=indent)
        if not source.startswith(stub, start):
            raise ValueError(f"{where}: the stub at offset {start} is not '# YOUR CODE HERE' + raise NotImplementedError()")
        source = source[:start] + textwrap.indent(block, indent).lstrip(" ") + source[start + len(stub):]
    if "# YOUR CODE HERE" in source:
        raise ValueError(f"{where}: a stub is left unfilled")
    return source


def build_variant(name: str, release_notebook: Path = cfg.RELEASE_NOTEBOOK) -> nbformat.NotebookNode:
    """The release notebook with every answer cell filled by ``VARIANTS[name]``."""
    nb = copy.deepcopy(nbformat.read(release_notebook, as_version=4))
    answers = VARIANTS[name]
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("solution"):
            continue
        grade_id = meta["grade_id"]
        if grade_id not in answers:
            raise KeyError(f"{release_notebook}: answer cell {grade_id} has no answer in variant {name} ({__file__})")
        answer = answers[grade_id]
        if cell.cell_type == "markdown":
            if cell.source.strip() != ANSWER_STUB or not isinstance(answer, str):
                raise ValueError(f"{release_notebook}: {grade_id} is not a '{ANSWER_STUB}' cell with a text answer")
            cell.source = answer
        else:
            cell.source = fill_code(cell.source, list(answer), f"{release_notebook} {grade_id} ({name})")
    for cell in nb.cells:  # as if saved from a fresh kernel
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def verify(name: str) -> None:
    """Run variant ``name``'s notebook code in this process (its answers, the given code, no test and no
    long experiment), then the source notebook's hidden tests on it, as the grader's judge does; a
    failed test raises. Only this file's own code runs."""
    from autograder.grading.judge import Judge, LocalKernel
    from autograder.notebook_code import load_namespace

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / cfg.SOURCE_NOTEBOOK.name
        path.write_bytes(notebook_bytes(build_variant(name)))
        for item in ("data", "figures"):
            (Path(folder) / item).symlink_to(cfg.SOURCE_NOTEBOOK.parent / item)
        namespace = load_namespace(path)
    judge = Judge(cfg.SOURCE_NOTEBOOK)
    for grade_id in judge.tests:
        verdict = judge.judge(grade_id, LocalKernel(namespace))
        if verdict.share < 1:
            raise AssertionError(f"{name}: {grade_id}: {verdict.message}")


def notebook_bytes(nb: nbformat.NotebookNode) -> bytes:
    """A notebook serialized as Jupyter saves it (one trailing newline)."""
    return (nbformat.writes(nb) + "\n").encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    parser.add_argument("--verify", action="store_true", help="run each variant through the hidden tests instead")
    args = parser.parse_args(argv)
    if args.verify:
        for name in VARIANTS:
            verify(name)
            print(f"{name}: passes every test cell of {cfg.SOURCE_NOTEBOOK.name}, hidden tests included")
        return 0
    stale = []
    for name in VARIANTS:
        path, content = HERE / f"{name}.ipynb", notebook_bytes(build_variant(name))
        if args.check:
            if not path.is_file() or path.read_bytes() != content:
                stale.append(path)
        else:
            path.write_bytes(content)
            print(f"wrote {path.relative_to(REPO)}")
    for path in stale:
        print(f"{path.relative_to(REPO)} differs from what {Path(__file__).name} builds; rerun it")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
