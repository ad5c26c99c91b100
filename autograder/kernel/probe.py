"""Answers the grader's questions about a submission, inside the student's kernel.

The grader never sends a test, an expected value or a verdict here. It sends this module's
source once per kernel (``autograder.kernel``), then questions: call this function with these
inputs, build this model and report what its forward pass does, train it and report its outputs
on these images, run this optimizer on these batches and report the parameters. The answer is
plain data, JSON with tensors as raw little-endian bytes in base64, never pickle; the grader
(``autograder/grading/judge.py``) computes the verdict from it. A submission can change what this module
reports (it runs in the submission's process), never how the grader judges the report.

Standard library only at module level: torch is imported by the functions that need it, from
the kernel's own environment. ``answer(namespace, question_json)`` is the whole interface; the
grader's ``LocalKernel`` calls it in-process on a trusted namespace (calibration, unit tests).
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import sys

MAX_ELEMENTS = 1_000_000  # a tensor larger than this is not reported (4 MB of float32)
MAX_ANSWER = 6 * 2**20  # characters of an answer (the grader's sockets refuse larger messages)
MAX_ITEMS = 10_000  # items of a list, tuple or dict reported
MAX_TEXT = 2_000  # characters of a string or a repr reported
MAX_DEPTH = 8
# layer constructors the grader may ask for by name (torch.nn), for models of its own
LAYERS = ("Linear", "ReLU", "Sigmoid", "Tanh", "Conv2d", "Flatten", "BatchNorm1d", "BatchNorm2d", "Dropout",
          "MaxPool2d", "Identity", "LogSoftmax", "Softmax")
DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")


class Refused(Exception):
    """A question this module will not answer (too large, unknown layer)."""


class _Discard(io.TextIOBase):
    """Where the notebook's prints go while it answers: the grader reads none of them, and a submission
    that prints megabytes per call would otherwise spend its time limit sending them."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


def _torch():
    return sys.modules.get("torch") or __import__("torch")


# --- Encoding ------------------------------------------------------------------------------

def encode_tensor(tensor) -> dict:
    """A tensor as {"dtype", "shape", "data" (base64 of its little-endian bytes)}, moved to the CPU."""
    torch = _torch()
    if tensor.numel() > MAX_ELEMENTS:
        raise Refused(f"a tensor of {tensor.numel()} elements is too large to report")
    tensor = tensor.detach().to("cpu").contiguous()
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype == "bfloat16":  # numpy has no bfloat16: reported as float32, exactly
        tensor, dtype = tensor.to(torch.float32), "float32"
    if dtype not in DTYPES:
        return {"__object__": {"type": f"Tensor[{dtype}]", "repr": ""}}
    data = tensor.numpy().astype(tensor.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
    return {"__tensor__": {"dtype": dtype, "shape": list(tensor.shape), "data": base64.b64encode(data).decode()}}


def decode_tensor(spec: dict):
    torch = _torch()
    import numpy as np

    dtype = "float32" if spec["dtype"] == "bfloat16" else spec["dtype"]
    array = np.frombuffer(base64.b64decode(spec["data"]), dtype=np.dtype(dtype).newbyteorder("<"))
    return torch.from_numpy(array.astype(array.dtype.newbyteorder("="), copy=True).reshape(spec["shape"]))


def encode(value, depth: int = 0):
    """Plain data for any value: JSON scalars as they are, tensors, containers, else type and repr."""
    torch = sys.modules.get("torch")
    if value is None or type(value) is bool:
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else {"__object__": {"type": "str", "repr": value[:MAX_TEXT]}}
    if type(value) in (int, float):
        if type(value) is float and not math.isfinite(value):
            return {"__float__": repr(value)}
        return value
    if torch is not None and isinstance(value, torch.Tensor):
        return encode_tensor(value)
    if depth < MAX_DEPTH and type(value) in (list, tuple) and len(value) <= MAX_ITEMS:
        items = [encode(v, depth + 1) for v in value]
        return items if type(value) is list else {"__tuple__": items}
    if depth < MAX_DEPTH and type(value) is dict and len(value) <= MAX_ITEMS and all(type(k) is str for k in value):
        return {"__dict__": {k: encode(v, depth + 1) for k, v in value.items()}}
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic) and value.dtype.kind in "biuf":
        number = value.item()
        return {"__scalar__": {"type": type(value).__name__, "value": encode(number, depth + 1)}}
    try:
        text = repr(value)[:MAX_TEXT]
    except Exception:
        text = "<repr failed>"
    return {"__object__": {"type": type(value).__name__, "repr": text}}


def decode(value, namespace: dict):
    """Inputs of a question: plain values, tensors, and models the grader names or describes."""
    if isinstance(value, list):
        return [decode(v, namespace) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return decode_tensor(value["__tensor__"])
    if "__tuple__" in value:
        return tuple(decode(v, namespace) for v in value["__tuple__"])
    if "__float__" in value:
        return float(value["__float__"])
    if "__model__" in value:
        return build_model(value["__model__"], namespace)
    if "__dict__" in value:
        return {k: decode(v, namespace) for k, v in value["__dict__"].items()}
    raise Refused(f"unknown input {sorted(value)}")


def build_model(spec: dict, namespace: dict):
    """A model: ``{"class": name}`` (a class of the notebook) or ``{"layers": [[name, args, kwargs]...]}``,
    with optional ``seed``, ``state`` (parameter name -> tensor) and ``frozen`` (parameter names)."""
    torch = _torch()
    if spec.get("seed") is not None:
        torch.manual_seed(spec["seed"])
    if "class" in spec:
        model = _lookup(namespace, spec["class"])()
    else:
        layers = []
        for name, args, kwargs in spec["layers"]:
            if name not in LAYERS:
                raise Refused(f"unknown layer {name}")
            layers.append(getattr(torch.nn, name)(*args, **kwargs))
        model = torch.nn.Sequential(*layers)
    if spec.get("state"):
        model.load_state_dict({k: decode_tensor(v["__tensor__"]) for k, v in spec["state"].items()})
    for name, parameter in model.named_parameters():
        if name in spec.get("frozen", ()):
            parameter.requires_grad_(False)
    return model


def _lookup(namespace: dict, name: str):
    if name not in namespace:
        raise NameError(f"name '{name}' is not defined")
    return namespace[name]


def _storage(tensor) -> int:
    try:
        return tensor.untyped_storage().data_ptr()
    except Exception:
        return tensor.data_ptr()


def _tensors(value) -> list:
    torch = _torch()
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


# --- Questions -------------------------------------------------------------------------------

def ask_value(namespace: dict, name: str):
    """The value of a name the notebook defined."""
    return {"value": encode(_lookup(namespace, name))}


def ask_call(namespace: dict, name: str, args: list, kwargs: dict, inputs_after: bool = False):
    """Call a function of the notebook; report its result, and on request the inputs after the call
    and which returned tensors share memory with an input."""
    function = _lookup(namespace, name)
    args, kwargs = decode(args, namespace), {k: decode(v, namespace) for k, v in kwargs.items()}
    result = function(*args, **kwargs)
    report = {"result": encode(result)}
    if inputs_after:
        report["inputs_after"] = [encode(a) for a in args]
        inputs = {_storage(t) for t in _tensors(args)}
        report["shares_input"] = [_storage(t) in inputs for t in _tensors(result)]
    return report


def _leaf_attributes(module) -> dict:
    names = ("in_features", "out_features", "num_features", "p", "eps", "momentum", "affine", "inplace")
    values = {}
    for name in names:
        value = getattr(module, name, None)
        if isinstance(value, (bool, int, float)):
            values[name] = value
    if hasattr(module, "bias"):
        values["bias"] = module.bias is not None
    return values


def ask_forward(namespace: dict, model: dict, steps: list[dict]):
    """Build a model, then run it on each step's input (``mode`` train or eval, optional ``seed``,
    ``trace``: the leaf modules in the order they ran, with inputs and outputs)."""
    torch = _torch()
    net = build_model(model, namespace)
    leaves = [m for m in net.modules() if not list(m.children())]
    report = {"modules": [type(m).__name__ for m in net.modules()],
              "parameters": [list(p.shape) for p in net.parameters()],
              "leaves": [{"type": type(m).__name__, "attributes": _leaf_attributes(m)} for m in leaves],
              "steps": []}
    for step in steps:
        net.train(step.get("mode", "train") == "train")
        if step.get("seed") is not None:
            torch.manual_seed(step["seed"])
        calls, hooks = [], []
        if step.get("trace"):
            for index, leaf in enumerate(leaves):
                hooks.append(leaf.register_forward_hook(
                    lambda m, inputs, output, index=index, calls=calls: calls.append(
                        {"leaf": index, "input": encode(inputs[0] if inputs else None), "output": encode(output)})))
        try:
            with torch.no_grad():
                output = net(decode(step["input"], namespace))
        finally:
            for hook in hooks:
                hook.remove()
        report["steps"].append({"output": encode(output), "calls": calls})
    return report


def ask_train(namespace: dict, model_class: str, optimizer: dict | None, seed: int, epochs: int, images: dict):
    """Train a notebook class with the notebook's ``train_briefly`` and report its outputs on ``images``
    (in eval mode). ``optimizer``: None for the notebook's default, else {"class": a class of the
    notebook or "torch.optim.<name>", "kwargs": {...}}."""
    torch = _torch()
    make_optimizer = None
    if optimizer is not None:
        name = optimizer["class"]
        factory = getattr(torch.optim, name.removeprefix("torch.optim.")) if name.startswith("torch.optim.") \
            else _lookup(namespace, name)
        kwargs = optimizer.get("kwargs", {})

        def make_optimizer(params):
            return factory(params, **kwargs)
    model = _lookup(namespace, "train_briefly")(_lookup(namespace, model_class), make_optimizer, seed=seed,
                                                epochs=epochs)
    model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device
    with torch.no_grad():
        outputs = model(decode(images, namespace).to(device))
    return {"outputs": encode(outputs)}


def _describe_state(entry, parameter) -> dict:
    torch = _torch()
    if isinstance(entry, torch.Tensor):
        return {"kind": "tensor", "shape": list(entry.shape)}
    if isinstance(entry, dict):
        return {"kind": "dict", "entries": {str(k): ({"kind": "tensor", "shape": list(v.shape)}
                                                     if isinstance(v, torch.Tensor) else {"kind": type(v).__name__})
                                            for k, v in entry.items()}}
    return {"kind": type(entry).__name__}


def ask_optimize(namespace: dict, optimizer: dict, model: dict, batches: list, count_calls: str | None = None):
    """Run an optimizer of the notebook on a model of the grader's, one step per batch (cross-entropy
    loss); report the parameters after each step, the optimizer's state per parameter and how many
    times ``count_calls`` (a function of the notebook) was called."""
    torch = _torch()
    net = build_model(model, namespace)
    opt = _lookup(namespace, optimizer["class"])(net.parameters(), **optimizer.get("kwargs", {}))
    calls = [0]
    original = namespace.get(count_calls) if count_calls else None
    if callable(original):
        def counted(*args, **kwargs):
            calls[0] += 1
            return original(*args, **kwargs)
        namespace[count_calls] = counted
    trajectory = []
    try:
        for x, y in batches:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(decode(x, namespace)), decode(y, namespace)).backward()
            opt.step()
            trajectory.append({name: encode(p) for name, p in net.named_parameters()})
    finally:
        if callable(original) and namespace.get(count_calls) is counted:
            namespace[count_calls] = original
    state = {}
    for name, parameter in net.named_parameters():
        if parameter in opt.state:
            state[name] = _describe_state(opt.state[parameter], parameter)
    return {"trajectory": trajectory, "state": state, "calls": calls[0] if callable(original) else None}


QUESTIONS = {"value": ask_value, "call": ask_call, "forward": ask_forward, "train": ask_train,
             "optimize": ask_optimize}


def answer(namespace: dict, question: str) -> str:
    """Answer one question (JSON {"ask": name, ...arguments}); return JSON: {"answer": ...}, or
    {"raised": {"type", "message"}} when the notebook's code raised (or the question was refused)."""
    try:
        request = json.loads(question)
        ask = QUESTIONS[request.pop("ask")]
        with contextlib.redirect_stdout(_Discard()), contextlib.redirect_stderr(_Discard()):
            found = ask(namespace, **request)
        reply = json.dumps({"answer": found})
        if len(reply) > MAX_ANSWER:
            raise Refused(f"an answer of {len(reply)} characters is too large to report")
        return reply
    except (Exception, SystemExit) as error:  # the student's code raised: part of the answer, judged by the grader
        with contextlib.suppress(Exception):
            return json.dumps({"raised": {"type": type(error).__name__, "message": str(error)[:MAX_TEXT],
                                          "refused": isinstance(error, Refused)}})
        return json.dumps({"raised": {"type": "Exception", "message": "", "refused": False}})


class Probe:
    """The installed probe: answers questions about the kernel's user namespace."""

    def __init__(self, shell):
        self.shell = shell

    def ask(self, question: str) -> str:
        return answer(self.shell.user_ns, question)


def install(shell) -> Probe:
    """The kernel's probe (``autograder.kernel.install_code`` calls this in the kernel)."""
    return Probe(shell)
