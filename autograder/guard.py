"""Kernel-side guard that keeps a submission from tampering with what the tests call.

The tests run in the student's kernel, after the student's code, so that code could replace
``torch.allclose``, rebind ``evaluate`` or ``CONVERGENCE_TARGETS`` (defined by the notebook's
locked cells), mutate them in place, or install IPython hooks that rewrite or silence a test
cell. The grader therefore sends the code below to the kernel (never imported by the grader):

- ``install``, once, before any notebook cell: creates the guard under a random name;
- ``record``, after each locked non-test code cell: the first time, it snapshots the library
  modules the tests use (before any student code has run); every time, it snapshots the names
  that cell defined (deep copies for data, the code object of functions, class dicts);
- ``restore``, before each test cell: puts every snapshot back, resets IPython's input and AST
  transformers, custom exception handlers, event callbacks and trace hooks, and returns the
  list of what it had to repair, which the grader reports as tampering.

A submission that hunts down the guard object itself could still defeat it; that needs
deliberate reverse engineering of the grader and is reported in the README as a known limit.
"""
from __future__ import annotations

import secrets

GUARDED_MODULES = ["builtins", "math", "numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim",
                   "torch.testing"]
GUARDED_CLASSES = ["torch.Tensor", "torch.nn.Module", "torch.optim.Optimizer"]
# builtins that IPython and ipykernel rebind themselves around each execution
KERNEL_MANAGED = ["input", "raw_input", "get_ipython", "display", "exit", "quit", "_", "__", "___",
                  "__IPYTHON__", "__builtins__"]
# event callbacks that the kernel's own libraries register (matplotlib's inline backend)
TRUSTED_CALLBACK_MODULES = ("matplotlib", "matplotlib_inline", "ipykernel", "IPython", "ipywidgets")

_KERNEL_CODE = r'''
def __guard_factory(modules, classes, kernel_managed, trusted_callbacks):
    import builtins, copy, sys, types
    ip = get_ipython()
    state = {"modules": None, "names": {}, "ip": None}

    def _resolve(dotted):
        module, _, attr = dotted.rpartition(".")
        return getattr(sys.modules[module], attr)

    def _freeze(value):
        # data is deep-copied (in-place edits are undone); callables keep their code
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

    def _thaw(frozen):
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

    def _same(a, b):
        try:
            if type(a) is not type(b):
                return False
            torch = sys.modules.get("torch")
            if torch is not None and isinstance(a, torch.Tensor):
                return a.shape == b.shape and bool(torch.equal(a, b))
            return bool(a == b)
        except Exception:
            return False

    def _restore_class(cls, saved, repaired):
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

    def _display_state():
        # what turns a test cell's value into the text nbgrader reads as partial credit
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

    def _restore_display(saved, repaired):
        if ip.displayhook is not saved["displayhook"]:
            ip.displayhook = saved["displayhook"]
            repaired.append("IPython displayhook")
        if sys.displayhook is not saved["sys.displayhook"]:
            sys.displayhook = saved["sys.displayhook"]
            repaired.append("sys.displayhook")
        for stream in ("stdout", "stderr"):  # what a test prints is what the grader reads
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

    def record(defined):
        if state["modules"] is None:
            state["modules"] = {m: (sys.modules[m], dict(vars(sys.modules[m]))) for m in modules if m in sys.modules}
            state["classes"] = {c: (_resolve(c), dict(_resolve(c).__dict__)) for c in classes
                                if c.rpartition(".")[0] in sys.modules}
            state["ip"] = (list(ip.input_transformers_cleanup), list(ip.input_transformers_post),
                           list(ip.ast_transformers), {k: list(v) for k, v in ip.events.callbacks.items()})
            state["display"] = _display_state()
        for name in defined:
            if name in ip.user_ns:
                state["names"][name] = _freeze(ip.user_ns[name])

    def restore():
        repaired = []
        for name, (module, saved) in (state["modules"] or {}).items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                repaired.append(f"sys.modules[{name!r}]")
            for key, value in saved.items():
                if name == "builtins" and key in kernel_managed:
                    continue
                if module.__dict__.get(key, None) is not value:
                    setattr(module, key, value)
                    repaired.append(f"{name}.{key}")
        for name, (cls, saved) in (state.get("classes") or {}).items():
            _restore_class(cls, saved, repaired)
        for name, frozen in state["names"].items():
            current = ip.user_ns.get(name)
            value = _thaw(frozen)
            if frozen[0] == "data":
                if not _same(current, value):
                    repaired.append(name)
            elif current is not value or (frozen[0] == "function" and current.__code__ is not frozen[2]):
                repaired.append(name)
            ip.user_ns[name] = value
        if state["ip"] is not None:
            cleanup, post, ast, callbacks = state["ip"]
            if ip.input_transformers_cleanup != cleanup or ip.input_transformers_post != post or ip.ast_transformers != ast:
                repaired.append("IPython input/AST transformers")
            ip.input_transformers_cleanup[:] = cleanup
            ip.input_transformers_post[:] = post
            ip.ast_transformers[:] = ast
            for key, current in ip.events.callbacks.items():
                kept = [f for f in current if f in callbacks.get(key, [])
                        or (getattr(f, "__module__", "") or "").startswith(trusted_callbacks)]
                if len(kept) != len(current):
                    repaired.append(f"IPython {key} callbacks")
                current[:] = kept
        if state.get("display") is not None:
            _restore_display(state["display"], repaired)
        if ip.custom_exceptions:
            repaired.append("IPython custom exception handler")
            ip.set_custom_exc((), None)
        if sys.gettrace() is not None or sys.getprofile() is not None:
            repaired.append("sys trace/profile hook")
            sys.settrace(None)
            sys.setprofile(None)
        return sorted(set(repaired))

    return types.SimpleNamespace(record=record, restore=restore)
'''


def new_token() -> str:
    """A fresh, unguessable builtins attribute name for one kernel's guard."""
    return "_g" + secrets.token_hex(8)


def install_code(token: str) -> str:
    """Code that creates the guard in a kernel, as ``builtins.<token>``."""
    return (_KERNEL_CODE + f"\nimport builtins as __b\n__b.{token} = __guard_factory({GUARDED_MODULES!r}, "
            f"{GUARDED_CLASSES!r}, {KERNEL_MANAGED!r}, {TRUSTED_CALLBACK_MODULES!r})\ndel __guard_factory, __b\n")


def record_code(token: str, defined: list[str]) -> str:
    """Code that snapshots the names a locked cell defined."""
    return f"__import__('builtins').{token}.record({sorted(defined)!r})"


def restore_expression(token: str) -> str:
    """An expression that restores the snapshots and evaluates to the list of repairs."""
    return f"__import__('builtins').{token}.restore()"
