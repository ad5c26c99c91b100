"""`python -m autograder check`: the student's pre-submission check, on real notebooks."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

import course_config as cfg
from autograder.authoring.check import check

EXAMPLES = cfg.EXAMPLES_DIR
MUTANTS = cfg.ROOT / "tests" / "mutants"
pytestmark = pytest.mark.kernel


def verdicts(path) -> dict:
    return {v.grade_id: v for v in check(path)}


def test_reference_passes_every_visible_test():
    found = verdicts(EXAMPLES / "reference.ipynb")
    assert all(v.ok for v in found.values()), [v for v in found.values() if not v.ok]


def test_blank_release_lists_what_is_left_to_do():
    found = verdicts(EXAMPLES / "blank.ipynb")
    assert not any(v.ok for v in found.values())
    assert found["ex1_memory"].message.startswith("not attempted yet")
    assert found["q_bn_learnable_ab"].message == "still empty"


@pytest.mark.parametrize("mutant, cell, message", [
    ("ex2_bndeepnet_three_batchnorms", "test_ex2_bn_models_structure",
     "BNDeepNet has 3 BatchNorm1d layers; the exercise asks for one after each of the 4 hidden linear layers"),
    ("ex2_softmax_instead_of_log_softmax", "test_ex2_bn_models_structure", "should return log-probabilities"),
    ("ex3_in_place_update", "test_ex3_momentum_update", "momentum_update changed its input"),
    # designs the exercise rules out in words: the visible tests name each
    ("ex1_megabytes_rounded_to_one_decimal", "test_ex1_memory", "looks rounded to one decimal: do not round"),
    ("ex2_batchnorm_after_relu", "test_ex2_bn_models_structure", "so it comes after a ReLU"),
    ("ex3_buffers_outside_optimizer_state", "test_ex3_momentum_optimizer", "no momentum buffer in self.state[p]"),
    ("ex3_optimizer_inlines_the_rule", "test_ex3_momentum_optimizer", "called momentum_update 0 time(s)"),
])
def test_a_visible_mistake_is_named(mutant, cell, message):
    found = verdicts(MUTANTS / f"{mutant}.ipynb")
    assert not found[cell].ok and message in found[cell].message, found[cell]
    others = [v for gid, v in found.items() if v.kind == "test" and gid != cell]
    assert all(v.ok for v in others), [v for v in others if not v.ok]


def test_a_hidden_only_mistake_is_not_revealed():
    found = verdicts(MUTANTS / "ex2_deepnet_sigmoid_instead_of_relu.ipynb")
    assert all(v.ok for v in found.values() if v.kind == "test")


# --- the students' checker, from a copy of the release alone ------------------------------------

@pytest.fixture(scope="module")
def bare_release(tmp_path_factory):
    """What a student receives, in a folder with no repository around it, with four notebooks."""
    folder = tmp_path_factory.mktemp("student") / "w4 homework"
    shutil.copytree(cfg.RELEASE_NOTEBOOK.parent, folder)
    shutil.copy(EXAMPLES / "reference.ipynb", folder / "reference.ipynb")
    shutil.copy(EXAMPLES / "blank.ipynb", folder / "blank.ipynb")
    for mutant in ("ex2_bndeepnet_three_batchnorms", "ex2_deepnet_sigmoid_instead_of_relu"):
        shutil.copy(MUTANTS / f"{mutant}.ipynb", folder / f"{mutant}.ipynb")
    return folder


def student_check(folder, notebook) -> subprocess.CompletedProcess:
    # -I: no PYTHONPATH, no user site, not even the script's folder: only what a student's Python has
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-I", "check.py", notebook], cwd=folder, capture_output=True, text=True,
                          timeout=600, env=env)


def lines_of(run) -> dict[str, str]:
    return {line.split()[1]: line for line in run.stdout.splitlines() if line[:4] in ("PASS", "FAIL", "TODO")}


def test_the_release_ships_the_checker_and_it_reveals_nothing_hidden():
    shipped = (cfg.RELEASE_NOTEBOOK.parent / "check.py").read_text()
    assert shipped == cfg.STUDENT_CHECKER.read_text()
    from test_grade import hidden_identifiers

    assert not [name for name in hidden_identifiers() if re.search(rf"(?<![\w]){name}(?![\w])", shipped)]
    assert "BEGIN HIDDEN TESTS" not in shipped


def test_student_check_passes_the_reference(bare_release):
    run = student_check(bare_release, "reference.ipynb")
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    assert all(line.startswith("PASS") for line in lines_of(run).values()), run.stdout
    assert "7/7 test cells pass their visible tests" in run.stdout


def test_student_check_lists_the_blank_notebooks_work_and_fails(bare_release):
    run = student_check(bare_release, "blank.ipynb")
    assert run.returncode == 1, run.stdout + run.stderr[-2000:]
    found = lines_of(run)
    assert found["ex1_memory"].startswith("TODO") and "not attempted yet" in found["ex1_memory"]
    assert found["test_ex1_memory"].startswith("FAIL") and found["q_bn_helped_or_hurt"].endswith("still empty")


def test_student_check_names_a_visible_mistake_and_hides_a_hidden_one(bare_release):
    visible = student_check(bare_release, "ex2_bndeepnet_three_batchnorms.ipynb")
    assert visible.returncode == 1
    assert "BNDeepNet has 3 BatchNorm1d layers" in lines_of(visible)["test_ex2_bn_models_structure"]
    hidden = student_check(bare_release, "ex2_deepnet_sigmoid_instead_of_relu.ipynb")  # only hidden tests catch it
    assert hidden.returncode == 0, hidden.stdout
    assert all(line.startswith("PASS") for gid, line in lines_of(hidden).items() if gid.startswith("test_"))


def test_student_check_says_so_when_a_locked_test_was_edited(bare_release):
    import nbformat

    nb = nbformat.read(bare_release / "reference.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_ex1_memory")
    cell.source = "pass  # the student emptied the test"
    nbformat.write(nb, bare_release / "edited.ipynb")
    run = student_check(bare_release, "edited.ipynb")
    assert run.returncode == 1
    assert "you edited this locked test cell" in lines_of(run)["test_ex1_memory"]


def test_student_check_refuses_a_file_that_is_not_a_notebook(bare_release):
    (bare_release / "broken.ipynb").write_text("{not json")
    run = student_check(bare_release, "broken.ipynb")
    assert run.returncode == 2 and "broken.ipynb: not a readable notebook" in run.stderr
    assert "Traceback" not in run.stderr


def test_student_check_prints_no_warning_of_its_own(bare_release):
    run = student_check(bare_release, "reference.ipynb")
    assert "WARNING" not in run.stderr and "without encryption" not in run.stderr, run.stderr[-2000:]


# --- the check in the notebook's last cell: Colab's open notebook, Jupyter's saved file, or neither ------

FAKE_COLAB = '''import json
def blocking_request(request_type, request="", timeout_sec=5, parent=None):
    # Colab hands the kernel the notebook open in its editor; cell sources come as lists of lines
    assert request_type == "get_ipynb"
    nb = json.load(open({path!r}))
    for cell in nb["cells"]:
        cell["source"] = cell["source"].splitlines(keepends=True) if isinstance(cell["source"], str) else cell["source"]
    return {{"ipynb": nb}}
'''


def run_check_cell(folder, *, colab_notebook=None) -> str:
    """Run the release's check cell in a kernel in ``folder``, as a student does (not grading)."""
    import nbformat
    from nbclient import NotebookClient

    release = nbformat.read(cfg.RELEASE_NOTEBOOK, as_version=4)
    check_cell = next(c for c in release.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "given_check")
    setup = "GRADING = False\n"
    if colab_notebook is not None:
        package = folder / "fake_colab" / "google" / "colab"
        package.mkdir(parents=True)
        (package.parent / "__init__.py").write_text("")
        (package / "__init__.py").write_text("")
        (package / "_message.py").write_text(FAKE_COLAB.format(path=str(colab_notebook)))
        setup += f"import sys\nsys.path.insert(0, {str(folder / 'fake_colab')!r})\n"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell(check_cell.source)])
    env_before = os.environ.pop("NBGRADER_EXECUTION", None)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        if env_before is not None:
            os.environ["NBGRADER_EXECUTION"] = env_before
    return "".join(o.get("text", "") for o in nb.cells[1].outputs if o.get("output_type") == "stream")


def test_the_check_cell_checks_the_notebook_open_in_colab(tmp_path):
    folder = shutil.copytree(cfg.RELEASE_NOTEBOOK.parent, tmp_path / "content")  # no W4_Tutorial1.ipynb saved:
    (folder / cfg.RELEASE_NOTEBOOK.name).unlink()  # Colab's editor holds the notebook
    printed = run_check_cell(folder, colab_notebook=MUTANTS / "ex2_bndeepnet_three_batchnorms.ipynb")
    assert "the notebook open in Colab" in printed, printed
    assert "FAIL  test_ex2_bn_models_structure" in printed and "BNDeepNet has 3 BatchNorm1d layers" in printed
    assert "PASS  test_ex1_memory" in printed


def test_the_check_cell_reads_the_saved_file_in_jupyter_and_says_what_to_do_without_one(tmp_path):
    folder = shutil.copytree(cfg.RELEASE_NOTEBOOK.parent, tmp_path / "homework")
    shutil.copy(EXAMPLES / "reference.ipynb", folder / cfg.RELEASE_NOTEBOOK.name)
    printed = run_check_cell(folder)
    assert f"{cfg.RELEASE_NOTEBOOK.name} as last saved" in printed and "7/7 test cells pass" in printed, printed
    (folder / cfg.RELEASE_NOTEBOOK.name).unlink()
    printed = run_check_cell(folder)
    assert "Save this notebook under that name here" in printed and "python check.py" in printed, printed
