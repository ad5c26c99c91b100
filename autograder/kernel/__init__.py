"""Code that runs inside the student's kernel, and how the grader sends it there.

The modules of this package (``guard``, ``probe``) are never imported by the kernel: the grader
sends each one's source over the Jupyter channel and runs it there in a namespace of its own, so
the kernel needs no file of the grader's (the sandbox shows it none). They import only the
standard library at module level; what they need of the notebook's stack (torch) they import
inside the functions that use it, from the kernel's own environment.

The grader reaches an installed module through an attribute of ``builtins`` with an unguessable
name, and calls it through ``user_expressions`` (which IPython evaluates outside the cell
machinery: no input transformers, no history). Answers come back as JSON strings.
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path
from types import ModuleType

_BOOTSTRAP = """def _w4_install(source, name, token, options):
    import builtins
    namespace = {{"__name__": name}}
    exec(compile(source, "<" + name + ">", "exec"), namespace)
    setattr(builtins, token, namespace["install"](get_ipython(), **options))
_w4_install({source!r}, {name!r}, {token!r}, {options!r})
del _w4_install
"""


def new_token() -> str:
    """A fresh, unguessable ``builtins`` attribute name for one kernel's installed module."""
    return "_w4" + secrets.token_hex(8)


def install_code(module: ModuleType, token: str, **options) -> str:
    """Code that runs ``module``'s source in the kernel and binds ``install(shell, **options)``'s
    result to ``builtins.<token>``; ``options`` must be literals."""
    source = Path(module.__file__).read_text()
    return _BOOTSTRAP.format(source=source, name=module.__name__, token=token, options=options)


def call_expression(token: str, method: str, *args) -> str:
    """An expression that calls ``builtins.<token>.<method>(*args)`` (literal arguments)."""
    return f"__import__('builtins').{token}.{method}({', '.join(repr(a) for a in args)})"


def parse_answer(text: str):
    """The JSON value of a ``user_expressions`` result: the text/plain repr of a str holding JSON.

    Raises ``ValueError`` when the text is not that (the kernel's display machinery was changed).
    """
    import ast

    value = ast.literal_eval(text)
    if not isinstance(value, str):
        raise ValueError(f"expected a JSON string, got {type(value).__name__}")
    return json.loads(value)
