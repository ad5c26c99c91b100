"""Build realistic student submissions of W4_Tutorial1 from the release notebook.

A submission starts from what a student receives, the release notebook: each answer cell
(matched by its nbgrader grade id) is filled with the reference answer taken from the source
notebook's cell of the same grade id, without the ``### BEGIN/END SOLUTION`` lines; the
free-text cells get a short student-style answer (never the rubric). A *mutation*
``(grade_id, old, new)`` then replaces ``old`` by ``new`` in that answer, so that each mutant
carries one realistic mistake. Cell metadata stays as released (a student never edits it)
and outputs are cleared, so the files are byte-for-byte reproducible.

Written files (paths relative to the repository root):

- ``examples/submissions/``: ``reference.ipynb`` (all right), ``blank.ipynb`` (the release
  unchanged), three partial submissions, and ``expected.json``
  ``{file stem: {test cell id: expected score}}``;
- ``tests/mutants/``: one notebook per mistake, named by the mistake, and ``expected.json``
  ``{name: {"mistake": ..., "must_lose": [test cell ids scoring 0], "must_score": {test cell id:
  exact partial points}, "must_keep": [the others]}}``.

Usage, from the repository root::

    python tests/mutants/make_submissions.py            # rewrite the committed files
    python tests/mutants/make_submissions.py --out DIR  # write the same tree under DIR
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Collection, Iterable, NamedTuple

import nbformat

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script, sys.path[0] is tests/mutants, not the repository
    sys.path.insert(0, str(REPO))

import course_config as cfg  # noqa: E402
from autograder.grading.grade import graded_cells  # noqa: E402

EXAMPLES_DIR = Path("examples") / "submissions"
MUTANTS_DIR = Path("tests") / "mutants"
SOLUTION_DELIMITERS = ("### BEGIN SOLUTION", "### END SOLUTION")

TEST_CELLS: tuple[str, ...] = tuple(graded_cells()[0])  # autograded test cell ids, in notebook order

# What a student would write in the free-text cells: short, plausible, not the model answer.
STUDENT_ANSWERS: dict[str, str] = {
    "q_delivery_strategy": (
        "Being 15 minutes late for everyone gives 12 x 2 = 24 stars. Since a rating never goes below 1 star,\n"
        "it is better to give up on one customer and deliver the other 11 on time: 11 x 3 + 1 = 34 stars.\n"
        "As a customer I would not want this: one person gets their meal hours late."),
    "q_better_loss": (
        "Use the total lateness in minutes over all customers (or its square) as the loss, with no floor,\n"
        "so that every extra minute of delay always costs something and nobody is sacrificed."),
    "q_good_descent": (
        "It should not get stuck on plateaus or at saddle points, it should not oscillate or diverge in\n"
        "steep narrow valleys (adapt the step to the curvature), and each step should be cheap."),
    "q_sgd_vs_minibatch_plot": (
        "The SGD curve is very noisy and jumps up and down from step to step, because one example gives a\n"
        "noisy gradient. With minibatches the gradient is averaged, so the curve is smoother and goes down\n"
        "more steadily."),
    "q_convergence_vs_batch_size": (
        "Accuracy first goes up with the batch size and then down again. Very small batches are slow\n"
        "per example and noisy; very large batches make too few updates in the time we have. A medium\n"
        "batch size (around 32-256) was best."),
    "q_bn_learnable_ab": (
        "If every feature is forced to mean 0 and variance 1, the next layer always sees the same range,\n"
        "e.g. half of the ReLUs are always off. With a and b the network can learn the scale and shift it\n"
        "needs, and can even undo the normalization."),
    "q_bn_helped_or_hurt": (
        "BN helped a lot for the deep network, which learned much faster with it, because it keeps the\n"
        "activations and gradients well scaled through the layers. For the shallow network it did not help\n"
        "much (the training loss was even a bit higher), since there is little to fix and BN adds noise."),
}


class Mutation(NamedTuple):
    """Replace ``old``, which must occur exactly once, by ``new`` in the answer cell ``grade_id``."""

    grade_id: str
    old: str
    new: str


class Mutant(NamedTuple):
    """One realistic mistake, the test cells it must make fail, and those it must cost a share of
    their points (a multiple-choice slip costs one option's share)."""

    mistake: str
    must_lose: tuple[str, ...]
    mutations: tuple[Mutation, ...]
    must_score: dict[str, float] = {}  # test cell -> exact points (partial credit)


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook as nbformat v4."""
    return nbformat.read(path, as_version=4)


def answer_cells(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """The cells a student writes in (nbgrader ``solution`` cells), by grade id."""
    return {cell.metadata["nbgrader"]["grade_id"]: cell for cell in nb.cells
            if cell.metadata.get("nbgrader", {}).get("solution")}


def without_delimiters(source: str) -> str:
    """The source of a solution cell with its ``### BEGIN/END SOLUTION`` lines removed."""
    return "\n".join(line for line in source.split("\n") if line.strip() not in SOLUTION_DELIMITERS)


def reference_answers(source_notebook: Path = cfg.SOURCE_NOTEBOOK) -> dict[str, str]:
    """The answer a good student writes in each answer cell, by grade id."""
    answers = {}
    for grade_id, cell in answer_cells(read_notebook(source_notebook)).items():
        if cell.cell_type == "markdown":
            if grade_id not in STUDENT_ANSWERS:
                raise KeyError(f"{source_notebook}: free-text cell {grade_id} has no student answer in {__file__}")
            answers[grade_id] = STUDENT_ANSWERS[grade_id]
        else:
            answers[grade_id] = without_delimiters(cell.source)
    return answers


def filled(mutations: Iterable[Mutation] = (), only: Collection[str] | None = None,
           release_notebook: Path = cfg.RELEASE_NOTEBOOK) -> nbformat.NotebookNode:
    """The release notebook with its answer cells filled in, then mutated.

    ``only``: the grade ids to fill (None: all); the other answer cells keep the release stub.
    A mutation whose ``old`` text is not in its cell exactly once raises, so that a mutant can never
    silently turn back into the reference or change more than its one mistake.
    """
    nb = copy.deepcopy(read_notebook(release_notebook))
    cells = answer_cells(nb)
    answers = reference_answers()
    for grade_id, cell in cells.items():
        if only is None or grade_id in only:
            cell.source = answers[grade_id]
    for mutation in mutations:
        if mutation.grade_id not in cells:
            raise KeyError(f"{release_notebook}: no answer cell {mutation.grade_id!r} to mutate")
        cell = cells[mutation.grade_id]
        found = cell.source.count(mutation.old)
        if found != 1:  # 0: stub or changed reference; 2+: ambiguous, e.g. a comment quoting the code
            raise ValueError(f"{release_notebook}: answer cell {mutation.grade_id!r} contains {mutation.old!r} "
                             f"{found} times, not once (left as the stub, or did the reference change?)")
        cell.source = cell.source.replace(mutation.old, mutation.new)
    for cell in nb.cells:  # as if saved from a fresh kernel: no outputs, no execution counts
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


# --- The mistakes ----------------------------------------------------------------------
# Texts below are taken verbatim from the source notebook's solutions; filled() fails loudly
# if the reference changes under them.
COUNT_ALL = "return sum(p.numel() for p in model.parameters())"
COPIES = "copies = 3 + batch_size"
MB_FORMULA = "return copies * count_parameters(model) * bytes_per_value / 1e6"
BN_SHALLOW_FORWARD = "x = F.relu(self.bn1(self.fc1(x)))"
BN_DEEP_FORWARD = "x = F.relu(norm(linear(x)))"
DEEP_LOOP = ("        for layer in (self.fc1, self.fc2, self.fc3, self.fc4):\n"
             "            x = F.relu(layer(x))\n"
             "        x = self.fc5(self.dropout(x))\n")
M_RULE = "m_new = grad + beta * m\n"  # the newline tells the code from the comment that quotes it
W_RULE = "w_new = w - lr * m_new\n"
STEP_CALL = 'w_new, state["momentum"] = momentum_update(p, p.grad, m, group["lr"], group["beta"])'


def mutation(grade_id: str, old: str, new: str) -> Mutation:
    """Shorthand used by the table of mutants."""
    return Mutation(grade_id, old, new)


MUTANTS: dict[str, Mutant] = {
    # Exercise 1: memory
    # Found by the first review of the corpus: each once earned full marks or passed narrowly
    "ex2_relu_on_the_output_logits": Mutant(
        "BNShallowNet applies a ReLU to the output layer before log_softmax",
        ("test_ex2_bn_models_structure",),
        (mutation("ex2_bn_models", "        x = self.fc2(self.dropout(x))\n",
                  "        x = F.relu(self.fc2(self.dropout(x)))\n"),)),
    "ex2_bnshallow_sigmoid_instead_of_relu": Mutant(
        "BNShallowNet uses a sigmoid after batch normalization instead of a ReLU (and learns too slowly)",
        ("test_ex2_bn_models_structure", "test_ex2_bn_models_convergence"),
        (mutation("ex2_bn_models", BN_SHALLOW_FORWARD, "x = torch.sigmoid(self.bn1(self.fc1(x)))"),)),
    "ex3_buffers_outside_optimizer_state": Mutant(
        "SGDMomentum keeps its momentum buffers in its own dict, not in self.state[p] (lost by state_dict)",
        ("test_ex3_momentum_optimizer",),
        (mutation("ex3_momentum", "                state = self.state[p]\n",
                  "                state = self.__dict__.setdefault('buffers', {}).setdefault(p, {})\n"),)),
    "ex1_mib_instead_of_mb": Mutant(
        "training_memory_mb divides by 2**20 (MiB) instead of 10**6 (MB)",
        ("test_ex1_memory",),
        (mutation("ex1_memory", "/ 1e6", "/ 2**20"),)),
    "ex1_counts_weights_without_biases": Mutant(
        "count_parameters counts only weight matrices (p.dim() > 1), forgetting the biases",
        ("test_ex1_memory",),
        (mutation("ex1_memory", COUNT_ALL, "return sum(p.numel() for p in model.parameters() if p.dim() > 1)"),)),
    "ex1_counts_buffers_too": Mutant(
        "count_parameters sums model.state_dict(), counting BatchNorm's running statistics as parameters",
        ("test_ex1_memory",),
        (mutation("ex1_memory", COUNT_ALL, "return sum(t.numel() for t in model.state_dict().values())"),)),
    "ex1_counts_linear_layers_only": Mutant(
        "count_parameters adds weight and bias of nn.Linear modules only (misses other layers, fails on bias=False)",
        ("test_ex1_memory",),
        (mutation("ex1_memory", COUNT_ALL, "return sum(m.weight.numel() + m.bias.numel() "
                                           "for m in model.modules() if isinstance(m, nn.Linear))"),)),
    "ex1_ignores_bytes_per_value": Mutant(
        "training_memory_mb always uses 4 bytes per value, ignoring its bytes_per_value argument",
        ("test_ex1_memory",),
        (mutation("ex1_memory", MB_FORMULA, MB_FORMULA.replace("bytes_per_value", "4")),)),
    "ex1_forgets_momentum_buffer": Mutant(
        "training_memory_mb counts 2 copies (weights, gradients) instead of 3, forgetting the momentum buffer",
        ("test_ex1_memory",),
        (mutation("ex1_memory", COPIES, "copies = 2 + batch_size"),)),
    "ex1_one_copy_too_many": Mutant(
        "training_memory_mb counts batch_size + 4 copies instead of 3 + batch_size",
        ("test_ex1_memory",),
        (mutation("ex1_memory", COPIES, "copies = batch_size + 4"),)),
    "ex1_megabytes_2_off_by_one_batch": Mutant(
        "megabytes_2 uses a minibatch of 51 instead of 50 (everything else right)",
        ("test_ex1_memory",),
        (mutation("ex1_memory", "batch_size=50)", "batch_size=51)"),)),
    "ex1_bits_instead_of_bytes": Mutant(
        "training_memory_mb multiplies by 8 bits per byte, giving megabits",
        ("test_ex1_memory",),
        (mutation("ex1_memory", MB_FORMULA, "return copies * count_parameters(model) * bytes_per_value * 8 / 1e6"),)),
    "ex1_hard_coded_for_net": Mutant(
        "count_parameters returns 101770 and the megabytes are literals: right for Net, wrong for any other model",
        ("test_ex1_memory",),
        (mutation("ex1_memory", COUNT_ALL, "return 101770"),
         mutation("ex1_memory", "copies = 3 + batch_size\n    " + MB_FORMULA,
                  "return (3 + batch_size) * 0.40708"),
         mutation("ex1_memory", "megabytes_1 = training_memory_mb(Net())", "megabytes_1 = 1.22"),
         mutation("ex1_memory", "megabytes_2 = training_memory_mb(Net(), batch_size=50)", "megabytes_2 = 21.58"))),
    "ex1_megabytes_rounded_to_one_decimal": Mutant(
        "the megabytes rounded to one decimal (1.2 and 21.6), which the exercise says not to do",
        ("test_ex1_memory",),
        (mutation("ex1_memory", "megabytes_1 = training_memory_mb(Net())", "megabytes_1 = round(training_memory_mb(Net()), 1)"),
         mutation("ex1_memory", "megabytes_2 = training_memory_mb(Net(), batch_size=50)",
                  "megabytes_2 = round(training_memory_mb(Net(), batch_size=50), 1)"))),
    # Exercise 2: batch normalization networks
    "ex2_batchnorm_after_relu": Mutant(
        "BNShallowNet and BNDeepNet apply BatchNorm1d after the ReLU instead of between linear layer and ReLU",
        ("test_ex2_bn_models_structure",),
        (mutation("ex2_bn_models", BN_SHALLOW_FORWARD, "x = self.bn1(F.relu(self.fc1(x)))"),
         mutation("ex2_bn_models", BN_DEEP_FORWARD, "x = norm(F.relu(linear(x)))"))),
    "ex2_bndeepnet_three_batchnorms": Mutant(
        "BNDeepNet has BatchNorm1d after only 3 of its 4 hidden linear layers",
        ("test_ex2_bn_models_structure",),
        (mutation("ex2_bn_models", "        self.bn4 = nn.BatchNorm1d(32)\n", ""),
         mutation("ex2_bn_models", ", (self.fc4, self.bn4)]", "]"),
         mutation("ex2_bn_models", "            x = F.relu(norm(linear(x)))\n",
                  "            x = F.relu(norm(linear(x)))\n        x = F.relu(self.fc4(x))\n"))),
    "ex2_deepnet_dropout_never_applied": Mutant(
        "DeepNet defines nn.Dropout(0.5) in __init__ but never applies it in forward",
        ("test_ex2_bn_models_structure",),
        (mutation("ex2_bn_models", DEEP_LOOP, DEEP_LOOP.replace("self.fc5(self.dropout(x))", "self.fc5(x)")),)),
    "ex2_deepnet_dropout_after_first_layer": Mutant(
        "DeepNet applies its dropout after the first hidden layer instead of before the last layer",
        ("test_ex2_bn_models_structure",),
        (mutation("ex2_bn_models", DEEP_LOOP,
                  "        x = self.dropout(F.relu(self.fc1(x)))\n"
                  "        for layer in (self.fc2, self.fc3, self.fc4):\n"
                  "            x = F.relu(layer(x))\n"
                  "        x = self.fc5(x)\n"),)),
    "ex2_dropout_rate_0_2": Mutant(
        "BNShallowNet uses nn.Dropout(0.2) instead of nn.Dropout(0.5)",
        ("test_ex2_bn_models_structure",),
        (mutation("ex2_bn_models", "        self.bn1 = nn.BatchNorm1d(128)\n        self.dropout = nn.Dropout(0.5)",
                  "        self.bn1 = nn.BatchNorm1d(128)\n        self.dropout = nn.Dropout(0.2)"),)),
    "ex2_softmax_instead_of_log_softmax": Mutant(
        "BNShallowNet ends with F.softmax instead of F.log_softmax",
        ("test_ex2_bn_models_structure",),
        (mutation("ex2_bn_models", "x = self.fc2(self.dropout(x))\n        return F.log_softmax(x, dim=1)",
                  "x = self.fc2(self.dropout(x))\n        return F.softmax(x, dim=1)"),)),
    "ex2_deepnet_missing_relu": Mutant(
        "DeepNet has no ReLU after its fourth hidden layer",
        ("test_ex2_bn_models_structure",),
        (mutation("ex2_bn_models", DEEP_LOOP,
                  "        for layer in (self.fc1, self.fc2, self.fc3):\n"
                  "            x = F.relu(layer(x))\n"
                  "        x = self.fc5(self.dropout(self.fc4(x)))\n"),)),
    "ex2_batchnorm_batch_stats_in_eval": Mutant(
        "BNShallowNet's BatchNorm1d has track_running_stats=False, so eval mode still uses batch statistics",
        ("test_ex2_bn_models_structure",),
        (mutation("ex2_bn_models", "        self.bn1 = nn.BatchNorm1d(128)\n        self.dropout",
                  "        self.bn1 = nn.BatchNorm1d(128, track_running_stats=False)\n        self.dropout"),)),
    "ex2_deepnet_sigmoid_instead_of_relu": Mutant(
        "DeepNet uses torch.sigmoid instead of F.relu as its activation, and does not learn in 5 epochs",
        ("test_ex2_bn_models_structure", "test_ex2_bn_models_convergence"),
        (mutation("ex2_bn_models", DEEP_LOOP, DEEP_LOOP.replace("F.relu(layer(x))", "torch.sigmoid(layer(x))")),)),
    # Exercise 3: momentum
    "ex3_momentum_sign_flipped": Mutant(
        "momentum_update computes m_new = grad - beta * m",
        ("test_ex3_momentum_update", "test_ex3_momentum_optimizer"),
        (mutation("ex3_momentum", M_RULE, "m_new = grad - beta * m\n"),)),
    "ex3_exponential_average_momentum": Mutant(
        "momentum_update keeps an exponential average m_new = beta * m + (1 - beta) * grad",
        ("test_ex3_momentum_update", "test_ex3_momentum_optimizer"),
        (mutation("ex3_momentum", M_RULE, "m_new = beta * m + (1 - beta) * grad\n"),)),
    "ex3_nesterov_step": Mutant(
        "momentum_update takes a Nesterov step w - lr * (grad + beta * m_new) instead of w - lr * m_new",
        ("test_ex3_momentum_update", "test_ex3_momentum_optimizer"),
        (mutation("ex3_momentum", W_RULE, "w_new = w - lr * (grad + beta * m_new)\n"),)),
    "ex3_in_place_update": Mutant(
        "momentum_update changes its inputs in place (m.mul_(beta).add_(grad), w.sub_), returns no new tensors",
        ("test_ex3_momentum_update",),
        (mutation("ex3_momentum", M_RULE, "m_new = m.mul_(beta).add_(grad)\n"),
         mutation("ex3_momentum", W_RULE, "w_new = w.sub_(lr * m_new)\n"))),
    "ex3_optimizer_ignores_beta": Mutant(
        "SGDMomentum.step always uses beta = 0.9 instead of the beta it was given",
        ("test_ex3_momentum_optimizer",),
        (mutation("ex3_momentum", STEP_CALL, STEP_CALL.replace('group["beta"]', "0.9")),)),
    "ex3_optimizer_resets_buffer_each_step": Mutant(
        "SGDMomentum.step starts every step from a zero buffer, so no momentum is kept between steps",
        ("test_ex3_momentum_optimizer",),
        (mutation("ex3_momentum", 'm = state.get("momentum", torch.zeros_like(p))', "m = torch.zeros_like(p)"),)),
    "ex3_optimizer_inlines_the_rule": Mutant(
        "SGDMomentum.step writes the momentum rule inline instead of calling momentum_update",
        ("test_ex3_momentum_optimizer",),
        (mutation("ex3_momentum", STEP_CALL,
                  'state["momentum"] = p.grad + group["beta"] * m\n'
                  '                w_new = p - group["lr"] * state["momentum"]'),)),
    "ex3_optimizer_updates_frozen_parameters": Mutant(
        "SGDMomentum.step does not skip parameters whose grad is None (crashes on a frozen parameter)",
        ("test_ex3_momentum_optimizer",),
        (mutation("ex3_momentum", "                if p.grad is None:\n                    continue\n", ""),)),
    # Multiple choice: right minus wrong over four options, never below 0
    "mcq_minibatch_memory_efficient": Mutant(
        "answers that minibatch gradient descent is more memory efficient than single-observation SGD",
        (), (mutation("mcq_minibatch", "memory_efficient = False", "memory_efficient = True"),),
        {"test_mcq_minibatch": 0.5 * cfg.POINTS["test_mcq_minibatch"]}),
    "mcq_minibatch_all_true": Mutant(
        "guesses: every minibatch option True (two right, two wrong)",
        ("test_mcq_minibatch",),
        (mutation("mcq_minibatch", "increased_model_update_frequency = False", "increased_model_update_frequency = True"),
         mutation("mcq_minibatch", "memory_efficient = False", "memory_efficient = True"))),
    "mcq_momentum_per_parameter_steps": Mutant(
        "answers that momentum scales each parameter's step by its own squared-gradient history, as Adam does",
        (), (mutation("mcq_momentum", "per_parameter_step_sizes = False", "per_parameter_step_sizes = True"),),
        {"test_mcq_momentum": 0.5 * cfg.POINTS["test_mcq_momentum"]}),
    "mcq_momentum_all_false": Mutant(
        "guesses: every momentum option False (two right, two wrong)",
        ("test_mcq_momentum",),
        (mutation("mcq_momentum", "damps_oscillations = True", "damps_oscillations = False"),
         mutation("mcq_momentum", "closer_to_minimum = True", "closer_to_minimum = False"))),
    "mcq_momentum_all_wrong": Mutant(
        "answers every momentum option the wrong way round",
        ("test_mcq_momentum",),
        (mutation("mcq_momentum", "damps_oscillations = True", "damps_oscillations = False"),
         mutation("mcq_momentum", "closer_to_minimum = True", "closer_to_minimum = False"),
         mutation("mcq_momentum", "larger_beta_always_faster = False", "larger_beta_always_faster = True"),
         mutation("mcq_momentum", "per_parameter_step_sizes = False", "per_parameter_step_sizes = True"))),
}

# --- Example submissions ----------------------------------------------------------------
MARKDOWN_BEFORE_EX2 = ("q_delivery_strategy", "q_better_loss", "q_good_descent", "q_sgd_vs_minibatch_plot",
                       "q_convergence_vs_batch_size")


class Example(NamedTuple):
    """A whole submission: which answers are filled, which mistakes it makes, what it scores."""

    only: tuple[str, ...] | None  # grade ids filled in; None: all
    mutations: tuple[Mutation, ...]
    scores_zero: tuple[str, ...]  # test cells expected to score 0; the others score full points


def mutations_of(*names: str) -> tuple[Mutation, ...]:
    """The mutations of several mutants, to combine their mistakes in one submission."""
    return tuple(m for name in names for m in MUTANTS[name].mutations)


EXAMPLES: dict[str, Example] = {
    "reference": Example(None, (), ()),
    "blank": Example((), (), TEST_CELLS),
    "partial_memory_only": Example(
        ("mcq_minibatch", "ex1_memory", "mcq_momentum", *MARKDOWN_BEFORE_EX2), (),
        ("test_ex2_bn_models_structure", "test_ex2_bn_models_convergence", "test_ex3_momentum_update",
         "test_ex3_momentum_optimizer")),
    "partial_mib_and_softmax": Example(
        ("mcq_minibatch", "ex1_memory", "ex2_bn_models", "mcq_momentum", *MARKDOWN_BEFORE_EX2, "q_bn_learnable_ab"),
        mutations_of("ex1_mib_instead_of_mb", "ex2_softmax_instead_of_log_softmax"),
        ("test_ex1_memory", "test_ex2_bn_models_structure", "test_ex3_momentum_update",
         "test_ex3_momentum_optimizer")),
    "partial_bn_after_relu": Example(  # all but the last free-text answer, with one mistake
        ("mcq_minibatch", "ex1_memory", "ex2_bn_models", "ex3_momentum", "mcq_momentum", *MARKDOWN_BEFORE_EX2,
         "q_bn_learnable_ab"),
        mutations_of("ex2_batchnorm_after_relu"),
        ("test_ex2_bn_models_structure",)),
}


def notebook_bytes(nb: nbformat.NotebookNode) -> bytes:
    """A notebook serialized as Jupyter saves it (one trailing newline)."""
    return (nbformat.writes(nb) + "\n").encode("utf-8")


def json_bytes(data: object) -> bytes:
    """Deterministic JSON: sorted keys, indented, one trailing newline."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def expected_scores(scores_zero: Collection[str]) -> dict[str, float]:
    """{test cell id: expected score}: 0 for the cells in ``scores_zero``, full points otherwise."""
    return {cell: 0.0 if cell in scores_zero else float(cfg.POINTS[cell]) for cell in TEST_CELLS}


def build() -> dict[Path, bytes]:
    """Every generated file, as {path relative to the repository root: content}."""
    files: dict[Path, bytes] = {}
    examples_expected = {}
    for name, example in EXAMPLES.items():
        files[EXAMPLES_DIR / f"{name}.ipynb"] = notebook_bytes(filled(example.mutations, example.only))
        examples_expected[name] = expected_scores(example.scores_zero)
    files[EXAMPLES_DIR / "expected.json"] = json_bytes(examples_expected)
    mutants_expected = {}
    for name, mutant in MUTANTS.items():
        unknown = (set(mutant.must_lose) | set(mutant.must_score)) - set(TEST_CELLS)
        if unknown:
            raise ValueError(f"{__file__}: mutant {name} names unknown test cells {sorted(unknown)}")
        files[MUTANTS_DIR / f"{name}.ipynb"] = notebook_bytes(filled(mutant.mutations))
        mutants_expected[name] = {
            "mistake": mutant.mistake,
            "must_lose": [c for c in TEST_CELLS if c in mutant.must_lose],
            "must_score": {c: mutant.must_score[c] for c in TEST_CELLS if c in mutant.must_score},
            "must_keep": [c for c in TEST_CELLS if c not in mutant.must_lose and c not in mutant.must_score],
        }
    files[MUTANTS_DIR / "expected.json"] = json_bytes(mutants_expected)
    return files


def write(root: Path) -> list[Path]:
    """Write every generated file under ``root``; return the paths written."""
    written = []
    for relative, content in build().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO, help="root to write under (default: the repository)")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(path)


if __name__ == "__main__":
    main()
