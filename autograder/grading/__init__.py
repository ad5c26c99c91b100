"""Grading: runs in the grader's process and its workers, one submission after another.

Intake (``submissions``, ``shards``), nbgrader's configuration and steps (``settings``, ``course``,
``preprocessors``, ``execute`` and its channel to the kernel, ``kernel_channel``), the judging of
answers outside the kernel (``judge``, ``heldout``), the workers and their warm kernels (``worker``,
``dispatch``, ``warm``), the class run (``grade``: a façade over its seats, ``slots``, its result
files, ``store``, and the canary's scheduling, ``canary``), its records (``results``, ``gradebook``),
the similarity check and what the machine gives (``machine``, ``doctor``).
"""
