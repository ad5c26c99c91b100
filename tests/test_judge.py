"""The judge, without a kernel: the hidden tests run in this process against the reference's own
namespace (full marks), against answers that are wrong in every way an answer can be (a verdict,
never an error of the grader), and against replies no probe would send (unreadable, never a score).
"""
from __future__ import annotations

import json
import math
import random

import pytest
import torch

import course_config as cfg
from autograder.grading import judge
from autograder.kernel import probe
from autograder.notebook_code import load_namespace

JUDGE = judge.Judge(cfg.SOURCE_NOTEBOOK)


@pytest.fixture(scope="module")
def reference():
    return load_namespace(cfg.SOURCE_NOTEBOOK)


def test_every_test_cell_has_hidden_tests_and_the_reference_passes_them_all(reference):
    assert set(JUDGE.tests) == {gid for gid in cfg.POINTS if gid.startswith("test_")}
    for gid in JUDGE.tests:
        verdict = JUDGE.judge(gid, judge.LocalKernel(reference))
        assert verdict.share == 1.0 and verdict.message == "", (gid, verdict)


def test_a_wrong_answer_loses_with_the_instructors_message(reference):
    namespace = dict(reference, megabytes_1=1.2)  # rounded: the text says not to
    verdict = JUDGE.judge("test_ex1_memory", judge.LocalKernel(namespace))
    assert verdict.share == 0 and "megabytes_1 is not the memory" in verdict.message


MCQ = {"test_mcq_minibatch": ["less_noisy_updates", "computationally_efficient", "increased_model_update_frequency",
                                "memory_efficient"],
       "test_mcq_momentum": ["damps_oscillations", "closer_to_minimum", "larger_beta_always_faster",
                             "per_parameter_step_sizes"]}


@pytest.mark.parametrize("gid", sorted(MCQ))
def test_multiple_choice_rewards_knowledge_not_guessing(reference, gid):
    # right minus wrong over four options, never below 0: a constant answer earns nothing
    options = MCQ[gid]
    key = {name: reference[name] for name in options}

    def share(answers):
        return JUDGE.judge(gid, judge.LocalKernel(dict(reference, **answers))).share

    assert share(key) == 1
    assert share({n: True for n in options}) == share({n: False for n in options}) == 0
    assert share({**key, options[0]: not key[options[0]]}) == 0.5  # one slip of four: half
    assert share({**key, options[0]: not key[options[0]], options[3]: not key[options[3]]}) == 0
    assert share({**key, options[0]: "True"}) == 0.5  # not a bool: not right


def test_an_error_of_the_students_code_fails_the_cell_with_its_name(reference):
    def count_parameters(model):
        raise TypeError("not today")

    verdict = JUDGE.judge("test_ex1_memory", judge.LocalKernel(dict(reference, count_parameters=count_parameters)))
    assert verdict.share == 0 and verdict.message == "count_parameters() raised TypeError: not today"


def test_a_missing_name_fails_the_cell(reference):
    namespace = {k: v for k, v in reference.items() if k != "SGDMomentum"}
    verdict = JUDGE.judge("test_ex3_momentum_optimizer", judge.LocalKernel(namespace))
    assert verdict.share == 0 and "NameError" in verdict.message


def test_the_held_out_labels_are_not_the_subsets_and_never_in_a_question(reference):
    images, labels = JUDGE.heldout()
    assert images.shape == (1000, 1, 28, 28) and torch.bincount(labels).tolist() == [100] * 10
    sent = []

    def recording(question):
        sent.append(json.dumps(question))
        return judge.LocalKernel(reference)(question)

    JUDGE.judge("test_ex2_bn_models_convergence", recording)
    labels_bytes = probe.encode(labels)["__tensor__"]["data"]
    assert sent and not any(labels_bytes in text or '"labels"' in text for text in sent)


# --- Answers no right submission gives: a verdict for each, never an error of the grader ------------

WEIRD = [None, True, 0, -1, 7.5, float("nan"), 10**30, "", "1.22", [], [1, 2], {"a": 1}, (1, 2), (None, None),
         torch.tensor(3), torch.tensor([1.0, 2.0]), torch.zeros(16, 10), torch.zeros(2, 2, dtype=torch.int64),
         torch.full((1000, 10), float("nan")), object()]


# encodings no probe writes: broken tensors, scalars, containers
MALFORMED = [{"__tensor__": {"dtype": "float32", "shape": [3], "data": "!!"}},
             {"__tensor__": {"dtype": "float32", "shape": [5], "data": "AAAA"}},
             {"__tensor__": {"dtype": "complex64", "shape": [1], "data": ""}}, {"__tensor__": 3},
             {"__scalar__": {"type": "float64", "value": "x"}}, {"__scalar__": {"type": "int64", "value": 10**400}},
             {"__dict__": 5}, {"__tuple__": "ab"}, {"__float__": "x"}, {"__object__": 1}, {"__what__": 1},
             10**400]


def weird_value(rng: random.Random):
    return rng.choice(WEIRD)


def weird_reply(question: dict, rng: random.Random) -> dict:
    """A reply of the probe's shape (or close to it) carrying nonsense."""
    roll = rng.random()
    if roll < 0.1:
        return rng.choice([{}, {"answer": 5}, {"raised": 3}, {"raised": {"type": 1}}, {"answer": {}}, {"answer": []}])
    if roll < 0.2:
        return {"raised": {"type": rng.choice(["ValueError", "SystemExit", "RuntimeError"]), "message": "boom"}}
    def enc(value):
        return rng.choice(MALFORMED) if rng.random() < 0.1 else json.loads(json.dumps(probe.encode(value)))
    ask = question["ask"]
    if ask == "value":
        return {"answer": {"value": enc(weird_value(rng))}}
    if ask == "call":
        n = len(question["args"])
        return {"answer": {"result": enc(weird_value(rng)),
                           "inputs_after": [enc(weird_value(rng)) for _ in range(rng.choice([0, n, n + 1]))],
                           "shares_input": rng.choice([[], [True], [False, False], "x"])}}
    if ask == "train":
        return {"answer": {"outputs": enc(weird_value(rng))}}
    if ask == "forward":
        leaves = [{"type": rng.choice(["Linear", "BatchNorm1d", "Dropout", "ReLU", 3]),
                   "attributes": rng.choice([{}, {"in_features": 784, "out_features": 128}, {"p": 0.5},
                                             {"num_features": "x"}])} for _ in range(rng.randint(0, 6))]
        steps = [{"output": enc(weird_value(rng)),
                  "calls": [{"leaf": rng.randint(-1, len(leaves)), "input": enc(weird_value(rng)),
                             "output": enc(weird_value(rng))} for _ in range(rng.randint(0, 5))]}
                 for _ in range(rng.choice([len(question["steps"]), len(question["steps"]) - 1]))]
        return {"answer": {"modules": rng.choice([["Linear", "Dropout"], [], ["Linear"] * 5, [1]]),
                           "parameters": rng.choice([[[3, 4]], [], [["x"]], [[784, 128], [128]]]),
                           "leaves": leaves, "steps": steps}}
    if ask == "optimize":
        names = ["0.weight", "0.bias", "2.weight", "2.bias"]
        trajectory = [{name: enc(weird_value(rng)) for name in rng.sample(names, rng.randint(0, 4))}
                      for _ in range(rng.choice([0, 1, 40]))]
        state = {name: rng.choice([{"kind": "tensor", "shape": [2, 3]}, {"kind": "dict", "entries": {"m": {}}},
                                   {"kind": "dict", "entries": {"m": 5}}, {"kind": "list"}, {"entries": "x"},
                                   {"kind": "dict", "entries": {"m": {"kind": "tensor", "shape": "x"}}}])
                 for name in rng.sample(names, 2)}
        return {"answer": {"trajectory": trajectory, "state": state, "calls": rng.choice([None, 2, 0, "2"])}}
    return {}


@pytest.mark.parametrize("gid", sorted(JUDGE.tests))
def test_nonsense_answers_get_a_verdict_never_a_grader_error(gid):
    for seed in range(60):
        rng = random.Random(seed)
        verdict = JUDGE.judge(gid, lambda question, rng=rng: weird_reply(question, rng))
        assert 0 <= verdict.share <= 1
        assert verdict.share < 1, f"{gid} gave points to nonsense (seed {seed})"


def test_values_of_every_kind_cross_the_wire_as_what_they_are():
    import numpy as np

    values = {"int": 3, "float": 1.5, "bool": True, "none": None, "str": "x", "nan": float("nan"),
              "tuple": (1, torch.ones(2)), "list": [1, [2]], "dict": {"k": 1.0}, "np": np.float64(2.5),
              "npint": np.int64(4), "tensor": torch.arange(6, dtype=torch.float64).reshape(2, 3)}
    for name, value in values.items():
        got = judge.Student(judge.LocalKernel({name: value})).value(name)
        if isinstance(value, torch.Tensor):
            assert torch.equal(got, value) and got.dtype == value.dtype
        elif isinstance(value, float) and math.isnan(value):
            assert math.isnan(got)
        elif isinstance(value, tuple):
            assert got[0] == 1 and torch.equal(got[1], value[1])
        else:
            assert got == value and type(got) is type(value), name
    opaque = judge.Student(judge.LocalKernel({"f": open})).value("f")
    assert isinstance(opaque, judge.Opaque) and opaque.type == "builtin_function_or_method"


def test_a_bug_in_a_hidden_test_is_the_graders_fault_not_a_score():
    bad = judge.Judge(cfg.SOURCE_NOTEBOOK)
    bad.tests = {"test_x": "1 / 0"}
    with pytest.raises(judge.HiddenTestError, match="ZeroDivisionError"):
        bad.judge("test_x", judge.LocalKernel({}))
    with pytest.raises(judge.HiddenTestError, match="no hidden tests"):
        bad.judge("test_y", judge.LocalKernel({}))


def test_given_reads_the_source_notebooks_literals_not_the_kernels():
    assert JUDGE.given("CONVERGENCE")["epochs"] == 5
    assert (JUDGE.given("MNIST_MEAN"), JUDGE.given("MNIST_STD")) == (0.1307, 0.3081)
    with pytest.raises(judge.HiddenTestError):
        JUDGE.given("NOT_A_NAME")


def test_the_probe_refuses_what_it_will_not_build_or_report():
    reply = json.loads(probe.answer({"f": len}, json.dumps({"ask": "call", "name": "f", "args": [
        {"__model__": {"layers": [["Transformer", [], {}]]}}], "kwargs": {}})))
    assert reply["raised"]["refused"]
    big = json.loads(probe.answer({"t": torch.zeros(probe.MAX_ELEMENTS + 1)}, json.dumps({"ask": "value", "name": "t"})))
    assert big["raised"]["refused"]


def test_what_the_notebook_prints_while_answering_is_discarded_and_printing_comes_back(capsys):
    """A submission that prints megabytes per call spends no time limit sending them to the grader."""
    import sys

    def chatty(x):
        print("HISTORY " * 1000)
        print("to stderr", file=sys.stderr)
        return x + 1

    reply = json.loads(probe.answer({"chatty": chatty}, json.dumps({"ask": "call", "name": "chatty", "args": [2],
                                                                    "kwargs": {}})))
    assert reply == {"answer": {"result": 3}}
    assert capsys.readouterr() == ("", "")
    print("after")  # the streams are the notebook's again
    assert capsys.readouterr().out == "after\n"
