# nbgrader's settings for this course come from course_config.py, through autograder/grading/settings.py.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autograder.settings import nbgrader_config  # noqa: E402

c = get_config()  # noqa: F821 - injected by traitlets when nbgrader loads this file
c.merge(nbgrader_config())
