"""Judge a submission's hidden tests in the grader's process, from what its kernel answers.

The instructor writes the hidden tests in the source notebook, between ``### BEGIN HIDDEN TESTS``
and ``### END HIDDEN TESTS`` of each test cell. They never reach the student's kernel: the
grader removes them from the cells it executes and runs them here, right after the cell's
visible tests ran in the kernel, with these names:

- ``student``: a :class:`Student`, which asks the kernel for values (``value``, ``call``,
  ``forward``, ``train``, ``optimize``) through ``autograder/kernel/probe.py`` and returns plain
  data: numbers, strings, tensors, tuples, lists, dicts (:class:`Opaque` for anything else);
- ``model(name)`` and ``layers(...)``: models the kernel builds, a notebook class or a stack of
  ``torch.nn`` layers, as inputs of a question;
- ``given(name)``: a literal that the notebook's own (locked) cells define, read from the source
  notebook, never from the kernel (``CONVERGENCE``, ``CONVERGENCE_TARGETS``...);
- ``heldout()``: images prepared as the notebook's ``load_mnist`` prepares them, and their labels,
  which never enter the kernel (``autograder/grading/heldout.py``); ``heldout_metrics(outputs, labels,
  what)``: the loss and accuracy of a network's outputs on them, as the notebook's ``evaluate``;
- ``torch``, ``nn``, ``F``, ``np``, ``math``, ``numbers``, and the checks ``expect_number``,
  ``expect_integer``, ``expect_tensor``.

A hidden test passes when its code finishes; it may set ``share`` (0 to 1) for partial credit
and ``message`` to say why. An ``AssertionError`` fails it with its message, which the student
sees; so does an error of the student's code while the kernel answered (:class:`KernelRaised`)
or an answer that cannot be read. Any other exception is a bug of the test, not the student's:
:class:`HiddenTestError`, a grader fault with no score.
"""
from __future__ import annotations

import json
import math
import numbers
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from autograder.kernel import probe
from autograder.grading.results import GraderFault
from autograder.notebook_code import given_literals, hidden_tests


class KernelRaised(AssertionError):
    """The student's code raised while the kernel answered a question: the check fails."""


class Unreadable(AssertionError):
    """The kernel's answer could not be read (its display machinery or the probe was changed)."""


class QuestionTimeout(Exception):
    """A question ran past the cell's time limit; the kernel was interrupted."""


class Interrupted(Exception):
    """The kernel cannot answer (it died or stopped answering): judging stops, the executor decides."""


class HiddenTestError(GraderFault):
    """A hidden test raised something other than an assertion: a bug of the test, never a score."""


@dataclass
class Verdict:
    share: float  # of the cell's points, 0 to 1
    message: str  # why points were lost, for the student ("" with full marks)
    seconds: float = 0.0
    timed_out: bool = False


@dataclass(frozen=True)
class Opaque:
    """A value the kernel could only describe: its type name and the start of its repr."""
    type: str
    repr: str


def decode(value: Any) -> Any:
    """The kernel's plain data as Python values (the inverse of ``probe.encode``); ``Unreadable``
    when it is not what the probe writes."""
    try:
        return _decode(value)
    except Unreadable:
        raise
    except Exception as error:  # untrusted data: any malformed part makes the answer unreadable
        raise Unreadable("the kernel's answer could not be read") from error


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return probe.decode_tensor(value["__tensor__"])
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {str(k): _decode(v) for k, v in value["__dict__"].items()}
    if "__float__" in value:
        return float(value["__float__"])
    if "__scalar__" in value:
        import numpy as np

        kind = value["__scalar__"]["type"]
        number = _decode(value["__scalar__"]["value"])
        if not isinstance(number, (bool, int, float)):
            raise Unreadable("the kernel's answer could not be read")
        return getattr(np, kind)(number) if kind in ("float64", "float32", "float16", "int64", "int32", "int16",
                                                     "int8", "uint8", "uint16", "uint32", "uint64", "bool_") else number
    if "__object__" in value:
        return Opaque(str(value["__object__"].get("type")), str(value["__object__"].get("repr")))
    raise Unreadable("the kernel's answer could not be read")


def model(name: str, *, seed: int | None = None) -> dict:
    """An instance of the notebook's class ``name`` (built in the kernel), as a question's input."""
    return {"__model__": {"class": name, "seed": seed}}


def layers(*specs: tuple, seed: int | None = None, state: dict | None = None, frozen: tuple[str, ...] = ()) -> dict:
    """``torch.nn.Sequential`` of ``(layer name, *args)`` or ``(name, args, kwargs)`` specs, built in
    the kernel, optionally with parameters ``state`` and ``frozen`` parameter names."""
    rows = []
    for spec in specs:
        name, *rest = spec
        if rest and isinstance(rest[-1], dict):
            rows.append([name, list(rest[:-1]), rest[-1]])
        else:
            rows.append([name, list(rest), {}])
    return {"__model__": {"layers": rows, "seed": seed, "frozen": list(frozen),
                          "state": {k: probe.encode(v) for k, v in (state or {}).items()}}}


class Student:
    """Asks the student's kernel questions; every answer is plain data, judged by the caller.

    ``ask``: sends one question (a dict) and returns the probe's reply (a dict), or raises
    ``QuestionTimeout`` or ``Interrupted``.
    """

    def __init__(self, ask: Callable[[dict], dict]):
        self._ask = ask
        self.questions = 0

    def _answer(self, question: dict, what: str) -> dict:
        self.questions += 1
        reply = self._ask(question)
        if not isinstance(reply, dict):
            raise Unreadable(f"the kernel's answer to {what} could not be read")
        if "raised" in reply:
            raised = reply["raised"] if isinstance(reply["raised"], dict) else {}
            kind, text = str(raised.get("type", "Exception")), str(raised.get("message", ""))
            if raised.get("refused"):
                raise Unreadable(f"the kernel refused to answer {what}: {text}")
            raise KernelRaised(f"{what} raised {kind}: {text}" if text else f"{what} raised {kind}")
        if not isinstance(reply.get("answer"), dict):
            raise Unreadable(f"the kernel's answer to {what} could not be read")
        return reply["answer"]

    def value(self, name: str) -> Any:
        """The value the notebook gave ``name``."""
        return decode(_field(self._answer({"ask": "value", "name": name}, name), "value", name))

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``name(*args, **kwargs)`` in the kernel; its result."""
        return self.call_checked(name, *args, **kwargs)[0]

    def call_checked(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, list, list[bool]]:
        """Like ``call``, with the inputs as they are after the call and, per returned tensor,
        whether it shares memory with an input."""
        question = {"ask": "call", "name": name, "args": [probe.encode(a) if not _is_model(a) else a for a in args],
                    "kwargs": {k: probe.encode(v) for k, v in kwargs.items()}, "inputs_after": True}
        answer = self._answer(question, f"{name}()")
        after, shares = answer.get("inputs_after"), answer.get("shares_input")
        if not isinstance(after, list) or len(after) != len(args) or not _list_of(shares, bool, allow_bool=True):
            raise Unreadable(f"the kernel's answer about {name}() could not be read")
        return decode(_field(answer, "result", f"{name}()")), decode(after), shares

    def forward(self, model_spec: dict, steps: list[dict]) -> dict:
        """Build ``model_spec`` in the kernel and run each step ({"input", "mode", "seed", "trace"})."""
        question = {"ask": "forward", "model": model_spec["__model__"],
                    "steps": [{**step, "input": probe.encode(step["input"])} for step in steps]}
        name = model_spec["__model__"].get("class", "the model")
        answer = decode_structure(self._answer(question, name))
        leaves = answer.get("leaves") if isinstance(answer.get("leaves"), list) else []
        shape_ok = (_list_of(answer.get("modules"), str)
                    and _list_of(answer.get("parameters"), list)
                    and all(_list_of(p, int) for p in answer["parameters"])
                    and all(isinstance(leaf, dict) and isinstance(leaf.get("type"), str)
                            and isinstance(leaf.get("attributes"), dict) for leaf in leaves)
                    and _list_of(answer.get("steps"), dict) and len(answer["steps"]) == len(steps)
                    and all(_list_of(step.get("calls"), dict) and "output" in step for step in answer["steps"])
                    and all(isinstance(call.get("leaf"), int) and 0 <= call["leaf"] < len(leaves)
                            for step in answer["steps"] for call in step["calls"]))
        if not shape_ok:
            raise Unreadable(f"the kernel's answer about {name} could not be read")
        return answer

    def train(self, class_name: str, *, images, seed: int, epochs: int, optimizer: dict | None = None):
        """Outputs on ``images`` of ``class_name`` trained by the notebook's ``train_briefly``."""
        question = {"ask": "train", "model_class": class_name, "optimizer": optimizer, "seed": seed,
                    "epochs": epochs, "images": probe.encode(images)}
        what = f"training {class_name}"
        return decode(_field(self._answer(question, what), "outputs", what))

    def optimize(self, optimizer: dict, model_spec: dict, batches: list, *, count_calls: str | None = None) -> dict:
        """Run the notebook's optimizer on ``model_spec`` for one step per (x, y) batch."""
        question = {"ask": "optimize", "optimizer": optimizer, "model": model_spec["__model__"],
                    "batches": [[probe.encode(x), probe.encode(y)] for x, y in batches], "count_calls": count_calls}
        what = f"{optimizer['class']}.step()"
        answer = decode_structure(self._answer(question, what))
        state = answer.get("state")
        shape_ok = (_list_of(answer.get("trajectory"), dict) and isinstance(state, dict)
                    and all(isinstance(entry, dict) for entry in state.values())
                    and all(isinstance(entry.get("entries", {}), dict) for entry in state.values())
                    and all(isinstance(item, dict) for entry in state.values()
                            for item in entry.get("entries", {}).values())
                    and (answer.get("calls") is None or type(answer.get("calls")) is int))
        if not shape_ok:
            raise Unreadable(f"the kernel's answer about {what} could not be read")
        return answer


def _list_of(value: Any, kind: type, allow_bool: bool = False) -> bool:
    return isinstance(value, list) and all(isinstance(item, kind) and (allow_bool or not isinstance(item, bool))
                                           for item in value)


def _field(answer: dict, key: str, what: str) -> Any:
    if key not in answer:
        raise Unreadable(f"the kernel's answer about {what} could not be read")
    return answer[key]


def _is_model(value: Any) -> bool:
    return isinstance(value, dict) and "__model__" in value


def decode_structure(answer: dict) -> dict:
    """An answer whose leaves are encoded values, decoded all through."""
    def walk(value):
        if isinstance(value, dict) and not any(k.startswith("__") and k.endswith("__") for k in value):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return decode(value)
    return walk(answer)


class LocalKernel:
    """Answers questions in this process, from a trusted namespace (the reference notebook's):
    calibration and the unit tests use it; student code never runs this way."""

    def __init__(self, namespace: dict):
        self.namespace = namespace

    def __call__(self, question: dict) -> dict:
        return json.loads(probe.answer(self.namespace, json.dumps(question)))


# --- Checks hidden tests use --------------------------------------------------------------

def expect_number(value: Any, what: str) -> float:
    """``value`` as a float, or an AssertionError naming ``what`` and the type it has."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise AssertionError(f"{what} should be a number (int or float), got {_describe(value)}")
    try:
        return float(value)
    except (OverflowError, ValueError):
        raise AssertionError(f"{what} should be a number of sensible size, got {_describe(value)}") from None


def expect_integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise AssertionError(f"{what} should be an int, got {_describe(value)}")
    return int(value)


def expect_tensor(value: Any, what: str, shape: tuple | None = None):
    import torch

    if not isinstance(value, torch.Tensor):
        raise AssertionError(f"{what} should be a tensor, got {_describe(value)}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise AssertionError(f"{what} should have shape {tuple(shape)}, got {tuple(value.shape)}")
    return value


def heldout_metrics(outputs: Any, labels, what: str) -> tuple[float, float]:
    """(mean negative log-likelihood, accuracy) of ``outputs`` (log-probabilities), as ``evaluate`` computes them."""
    import torch.nn.functional as F

    outputs = expect_tensor(outputs, f"the output of {what}", (len(labels), 10)).double()
    return F.nll_loss(outputs, labels).item(), (outputs.argmax(dim=1) == labels).double().mean().item()


def _describe(value: Any) -> str:
    if isinstance(value, Opaque):
        return value.type
    return type(value).__name__ if not isinstance(value, (bool, int, float, str)) else repr(value)[:40]


class Judge:
    """Runs the hidden tests of one source notebook against a student's kernel."""

    def __init__(self, source_notebook: Path):
        self.tests = hidden_tests(source_notebook)
        self.literals = given_literals(source_notebook)

    def given(self, name: str) -> Any:
        if name not in self.literals:
            raise HiddenTestError(f"given({name!r}): the source notebook's locked cells bind no literal of that name")
        import copy

        return copy.deepcopy(self.literals[name])

    def heldout(self):
        """The held-out images as ``load_mnist`` prepares the notebook's (normalized, (N, 1, 28, 28)), and labels."""
        from autograder.grading import heldout

        raw, labels = heldout.load()
        images = (raw.float() / 255 - self.given("MNIST_MEAN")) / self.given("MNIST_STD")
        return images.unsqueeze(1), labels

    def namespace(self, student: Student) -> dict[str, Any]:
        import numpy as np
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        return {"__name__": "hidden_tests", "student": student, "model": model, "layers": layers,
                "given": self.given, "heldout": self.heldout, "heldout_metrics": heldout_metrics, "torch": torch, "nn": nn, "F": F, "np": np,
                "math": math, "numbers": numbers, "expect_number": expect_number, "expect_integer": expect_integer,
                "expect_tensor": expect_tensor, "Opaque": Opaque}

    def judge(self, grade_id: str, ask: Callable[[dict], dict]) -> Verdict:
        """Run the hidden tests of ``grade_id``; ``ask`` reaches the student's kernel."""
        if grade_id not in self.tests:
            raise HiddenTestError(f"test cell {grade_id} has no hidden tests: the grader cannot judge it outside the kernel")
        start = time.perf_counter()
        namespace = self.namespace(Student(ask))
        try:
            exec(compile(self.tests[grade_id], f"<hidden tests of {grade_id}>", "exec"), namespace)  # noqa: S102
        except AssertionError as failed:
            return Verdict(0.0, str(failed) or "a hidden test failed", time.perf_counter() - start)
        except QuestionTimeout as late:
            return Verdict(0.0, str(late), time.perf_counter() - start, timed_out=True)
        except (GraderFault, Interrupted):
            raise
        except Exception as error:  # the test's own bug: never a student's score
            raise HiddenTestError(f"the hidden tests of {grade_id} raised {type(error).__name__}: {error}") from error
        share = namespace.get("share", 1.0)
        if isinstance(share, bool) or not isinstance(share, numbers.Real) or not 0 <= share <= 1:
            raise HiddenTestError(f"the hidden tests of {grade_id} set share = {share!r}, not a number from 0 to 1")
        message = str(namespace.get("message", "")) if share < 1 else ""
        return Verdict(float(share), message, time.perf_counter() - start)
