"""Platforms: this grader packaged for another grading service (``gradescope``)."""
