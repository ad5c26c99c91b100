"""The two kinds of error the command line reports in one line, without a traceback.

- ``InputError``: what the user gave is wrong (a file, a folder, a setting of ``course_config``);
  the message names it and says how to fix it.
- ``SetupError``: the machine or the installation cannot do the job (a tool, a file of the
  checkout, a server that does not start, a reference that fails here).

Every other exception is a bug of this program, and ``python -m autograder`` shows its traceback.
Both keep the built-in base they had before (``ValueError``, ``RuntimeError``), so code that
catches those still catches them.
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad input: the user's file, folder, command-line value or course setting."""


class SetupError(RuntimeError):
    """The machine or the installation cannot do what was asked."""
