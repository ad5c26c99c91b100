"""Marking: after the autograder, with people in the loop.

Hand grading (``manual``, ``formgrader``), final feedback (``feedback``) and the final grades for
the course's LMS (``export``, and its roster and import file, ``roster``).
"""
