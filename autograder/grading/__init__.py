"""Grading: runs in the grader's process and its workers, one submission after another.

Intake (``submissions``, ``shards``), nbgrader's configuration and steps (``settings``, ``course``,
``preprocessors``, ``execute``), the judging of answers outside the kernel (``judge``, ``heldout``),
the workers and their warm kernels (``worker``, ``warm``), the class run (``grade``), its records
(``results``, ``gradebook``), the similarity check and the machine check (``doctor``).
"""
