"""Authoring: what the course team runs before students get the assignment.

The MNIST subset's figures (``figures``), the release (``release``), the convergence thresholds
(``calibrate``), the grader's self-test (``selftest``) and the students' own pre-submission check
(``check``).
"""
