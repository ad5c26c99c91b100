"""nbgrader's configuration under its public name: ``nbgrader_config.py`` files import it from here.

The code lives in ``autograder/grading/settings.py``; this name stays so that every grading folder's
``nbgrader_config.py``, those written before the package had subpackages included, still loads.
"""
from autograder.grading.settings import kernel_environment, nbgrader_config, thread_env, venv_on_path

__all__ = ["kernel_environment", "nbgrader_config", "thread_env", "venv_on_path"]
