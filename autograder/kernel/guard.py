"""The kernel-side guard: puts back what a submission changed of the notebook's given code and
libraries before each locked cell runs.

Runs inside the student's kernel, sent there by its source (``autograder.kernel``). Scores do not
depend on it (the grader judges outside the kernel): it keeps the visible tests, the notebook's
own code and the grader's questions running on the libraries and helpers the notebook defined, so
that a submission's hooks or monkeypatches neither spoil an honest student's feedback nor hide
from the grader's notes.

- ``record(defined)``, after each locked non-test code cell: the first time, it snapshots the
  library modules and classes the tests use and IPython's execution machinery (before any student
  code has run); every time, it snapshots the names that cell defined (deep copies for data, the
  code object of functions, class dicts);
- ``restore()``, before each locked cell: puts every snapshot back, resets IPython's input and
  AST transformers, custom exception handlers, event callbacks and trace hooks, and the methods of
  the shell and the kernel objects (``transform_cell``, ``run_cell``, ``do_execute``...) that a
  submission replaced on the object itself; returns the JSON list of what it had to repair,
  which the grader reports as tampering.

``record`` and ``restore`` are both called the same way (an expression evaluated outside any
cell), so that both see the same display machinery: IPython swaps ``sys.displayhook`` while a
cell runs.

Standard library only.
"""
from __future__ import annotations

import copy
import json
import sys
import types

GUARDED_MODULES = ["builtins", "math", "numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim",
                   "torch.testing"]
GUARDED_CLASSES = ["torch.Tensor", "torch.nn.Module", "torch.optim.Optimizer"]
# builtins that IPython and ipykernel rebind themselves around each execution
KERNEL_MANAGED = ["input", "raw_input", "get_ipython", "display", "exit", "quit", "_", "__", "___",
                  "__IPYTHON__", "__builtins__"]
# event callbacks that the kernel's own libraries register (matplotlib's inline backend)
TRUSTED_CALLBACK_MODULES = ("matplotlib", "matplotlib_inline", "ipykernel", "IPython", "ipywidgets")


def _resolve(dotted: str):
    module, _, attr = dotted.rpartition(".")
    return getattr(sys.modules[module], attr)


def _freeze(value):
    """A snapshot of a value: data is deep-copied (in-place edits are undone); callables keep their code."""
    if isinstance(value, types.FunctionType):
        return ("function", value, value.__code__, value.__defaults__, value.__kwdefaults__)
    if isinstance(value, type):
        return ("class", value, dict(value.__dict__))
    if isinstance(value, types.ModuleType):
        return ("ref", value)
    try:
        return ("data", copy.deepcopy(value))
    except Exception:
        return ("ref", value)


def _same(a, b) -> bool:
    try:
        if type(a) is not type(b):
            return False
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(a, torch.Tensor):
            return a.shape == b.shape and bool(torch.equal(a, b))
        return bool(a == b)
    except Exception:
        return False


def _restore_class(cls: type, saved: dict, repaired: list[str]) -> None:
    for key, value in saved.items():
        if key in ("__dict__", "__weakref__"):
            continue
        if cls.__dict__.get(key, None) is not value:
            try:
                type.__setattr__(cls, key, value)
                repaired.append(f"{cls.__qualname__}.{key}")
            except (AttributeError, TypeError):
                pass
    for key in set(cls.__dict__) - set(saved):
        try:
            type.__delattr__(cls, key)
            repaired.append(f"{cls.__qualname__}.{key}")
        except (AttributeError, TypeError):
            pass


def _restore_methods(obj, saved: dict, label: str, repaired: list[str]) -> None:
    """Undo what replaced a method of ``obj``'s class on the object itself (``ip.transform_cell = f``);
    the data attributes the object changes as it runs are left alone."""
    for key, value in list(vars(obj).items()):
        if not callable(getattr(type(obj), key, None)) or isinstance(getattr(type(obj), key, None), type):
            continue
        if key not in saved:
            delattr(obj, key)
            repaired.append(f"{label}.{key}")
        elif value is not saved[key]:
            setattr(obj, key, saved[key])
            repaired.append(f"{label}.{key}")


class Guard:
    """Snapshots and restores one kernel's libraries, given names and IPython machinery."""

    def __init__(self, shell, modules: list[str], classes: list[str], kernel_managed: list[str],
                 trusted_callbacks: tuple[str, ...]):
        self.ip = shell
        self.module_names, self.class_names = modules, classes
        self.kernel_managed, self.trusted_callbacks = kernel_managed, tuple(trusted_callbacks)
        self.modules = None
        self.classes: dict = {}
        self.names: dict = {}
        self.ip_state = None
        self.display = None
        self.objects: dict = {}  # label -> (object, its instance attributes), the shell's and the kernel's

    def _thaw(self, frozen):
        kind = frozen[0]
        if kind == "function":
            _, fn, code, defaults, kwdefaults = frozen
            fn.__code__, fn.__defaults__, fn.__kwdefaults__ = code, defaults, kwdefaults
            return fn
        if kind == "class":
            _restore_class(frozen[1], frozen[2], [])
            return frozen[1]
        if kind == "data":
            return copy.deepcopy(frozen[1])
        return frozen[1]

    def _display_state(self) -> dict:
        # what turns a test cell's value into output
        ip = self.ip
        formatters = {}
        for mime, formatter in ip.display_formatter.formatters.items():
            formatters[mime] = {"enabled": formatter.enabled,
                                **{name: dict(getattr(formatter, name)) for name in
                                   ("type_printers", "deferred_printers", "singleton_printers")
                                   if hasattr(formatter, name)},
                                **{name: getattr(formatter, name) for name in ("float_precision", "pprint")
                                   if hasattr(formatter, name)}}
        return {"displayhook": ip.displayhook, "sys.displayhook": sys.displayhook, "formatters": formatters,
                "display_formatter": ip.display_formatter, "sys.stdout": sys.stdout, "sys.stderr": sys.stderr}

    def _restore_display(self, saved: dict, repaired: list[str]) -> None:
        ip = self.ip
        if ip.displayhook is not saved["displayhook"]:
            ip.displayhook = saved["displayhook"]
            repaired.append("IPython displayhook")
        if sys.displayhook is not saved["sys.displayhook"]:
            sys.displayhook = saved["sys.displayhook"]
            repaired.append("sys.displayhook")
        for stream in ("stdout", "stderr"):
            if getattr(sys, stream) is not saved["sys." + stream]:
                setattr(sys, stream, saved["sys." + stream])
                repaired.append("sys." + stream)
        if ip.display_formatter is not saved["display_formatter"]:
            ip.display_formatter = saved["display_formatter"]
            repaired.append("IPython display formatter")
        for mime, values in saved["formatters"].items():
            formatter = ip.display_formatter.formatters.get(mime)
            if formatter is None:
                continue
            for name, value in values.items():
                current = getattr(formatter, name)
                if isinstance(value, dict):
                    if dict(current) != value:
                        current.clear()
                        current.update(value)
                        repaired.append(f"IPython {mime} {name}")
                elif current != value:
                    setattr(formatter, name, value)
                    repaired.append(f"IPython {mime} {name}")

    def record(self, defined: list[str]) -> str:
        """Snapshot the names a locked cell defined (and, the first time, the libraries); return "[]"."""
        ip = self.ip
        if self.modules is None:
            self.modules = {m: (sys.modules[m], dict(vars(sys.modules[m]))) for m in self.module_names
                            if m in sys.modules}
            self.classes = {c: (_resolve(c), dict(_resolve(c).__dict__)) for c in self.class_names
                            if c.rpartition(".")[0] in sys.modules}
            self.ip_state = (list(ip.input_transformers_cleanup), list(ip.input_transformers_post),
                             list(ip.ast_transformers), {k: list(v) for k, v in ip.events.callbacks.items()})
            self.display = self._display_state()
            for label, obj in (("IPython shell", ip), ("kernel", getattr(ip, "kernel", None))):
                if obj is not None and hasattr(obj, "__dict__"):
                    self.objects[label] = (obj, dict(vars(obj)))
        for name in defined:
            if name in ip.user_ns:
                self.names[name] = _freeze(ip.user_ns[name])
        return "[]"

    def restore(self) -> str:
        """Put every snapshot back; return the JSON list of what had been changed."""
        ip = self.ip
        repaired: list[str] = []
        for name, (module, saved) in (self.modules or {}).items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                repaired.append(f"sys.modules[{name!r}]")
            for key, value in saved.items():
                if name == "builtins" and key in self.kernel_managed:
                    continue
                if module.__dict__.get(key, None) is not value:
                    setattr(module, key, value)
                    repaired.append(f"{name}.{key}")
        for cls, saved in self.classes.values():
            _restore_class(cls, saved, repaired)
        for name, frozen in self.names.items():
            current = ip.user_ns.get(name)
            value = self._thaw(frozen)
            if frozen[0] == "data":
                if not _same(current, value):
                    repaired.append(name)
            elif current is not value or (frozen[0] == "function" and current.__code__ is not frozen[2]):
                repaired.append(name)
            ip.user_ns[name] = value
        if self.ip_state is not None:
            cleanup, post, ast, callbacks = self.ip_state
            if ip.input_transformers_cleanup != cleanup or ip.input_transformers_post != post or ip.ast_transformers != ast:
                repaired.append("IPython input/AST transformers")
            ip.input_transformers_cleanup[:] = cleanup
            ip.input_transformers_post[:] = post
            ip.ast_transformers[:] = ast
            for key, current in ip.events.callbacks.items():
                kept = [f for f in current if f in callbacks.get(key, [])
                        or (getattr(f, "__module__", "") or "").startswith(self.trusted_callbacks)]
                if len(kept) != len(current):
                    repaired.append(f"IPython {key} callbacks")
                current[:] = kept
        if self.display is not None:
            self._restore_display(self.display, repaired)
        for label, (obj, saved) in self.objects.items():
            _restore_methods(obj, saved, label, repaired)
        if ip.custom_exceptions:
            repaired.append("IPython custom exception handler")
            ip.set_custom_exc((), None)
        if sys.gettrace() is not None or sys.getprofile() is not None:
            repaired.append("sys trace/profile hook")
            sys.settrace(None)
            sys.setprofile(None)
        return json.dumps(sorted(set(repaired)))


def install(shell, **options) -> Guard:
    """The kernel's guard (``autograder.kernel.install_code`` calls this in the kernel)."""
    return Guard(shell, **options)


def options() -> dict:
    """The literal options the grader installs the guard with."""
    return {"modules": GUARDED_MODULES, "classes": GUARDED_CLASSES, "kernel_managed": KERNEL_MANAGED,
            "trusted_callbacks": TRUSTED_CALLBACK_MODULES}
