"""Build the corpus of adversarial submissions: each tries to break or cheat the grader.

Each case starts from a realistic submission (``filled`` of ``tests/mutants/make_submissions.py``,
usually with a wrong answer that the cheat tries to hide) and adds hostile code to an answer
cell, or edits the notebook's structure. ``expected.json`` says, per case, the threat, the
score each autograded test cell must get (never more than the honest wrong answer earns),
the grader notes expected on a cell, and, for probes, what the probe must report.

    python tests/adversarial/make_adversarial.py            # rewrite the committed corpus
    python tests/adversarial/make_adversarial.py --out DIR

The filesystem probe needs the real paths of a grading run, so the test builds it with
``probe_filesystem(...)`` at run time instead of committing it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, NamedTuple

import nbformat

REPO = Path(__file__).resolve().parents[2]
for path in (REPO, REPO / "tests" / "mutants"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from make_submissions import (  # noqa: E402
    answer_cells, expected_scores, filled, json_bytes, mutation, notebook_bytes)

CORPUS_DIR = Path("tests") / "adversarial"
# every option the wrong way round: 0 points, so that no cheat can hide behind partial credit
WRONG_MCQ = [mutation("mcq_minibatch", "noisy_learning_process = False", "noisy_learning_process = True"),
             mutation("mcq_minibatch", "computationally_efficient = True", "computationally_efficient = False"),
             mutation("mcq_minibatch", "increased_model_update_frequency = False",
                      "increased_model_update_frequency = True"),
             mutation("mcq_minibatch", "memory_efficient = False", "memory_efficient = True")]
# rewrites what the MCQ test prints, and the display of values: forged partial credit
FORGE_SHARE = """import sys, re
class _Forged:
    def __init__(self, stream):
        self.stream = stream
    def write(self, text):
        return self.stream.write(re.sub(r"\\d+ of (\\d+) options right", r"\\1 of \\1 options right", text))
    def __getattr__(self, name):
        return getattr(self.stream, name)
sys.stdout = _Forged(sys.stdout)
get_ipython().display_formatter.formatters["text/plain"].for_type(float, lambda value, printer, cycle: printer.text("2.0"))"""
SIGN_FLIPPED = [mutation("ex3_momentum", "w_new = w - lr * m_new\n", "w_new = w + lr * m_new\n")]
# BNDeepNet that never sees its input: right layers, but it cannot learn
BLIND_BNDEEP = [mutation("ex2_bn_models", "        pairs = [", "        x = x * 0.0\n        pairs = [")]


class Case(NamedTuple):
    threat: str
    lose: tuple[str, ...]  # test cells that must score 0; the others keep full points
    build: Callable[[], nbformat.NotebookNode]
    notes: dict[str, str] = {}  # cell id -> text expected in the grader's notes for it
    dangerous: bool = False  # only graded when the kernel is sandboxed (limits in force)


def with_code(nb: nbformat.NotebookNode, grade_id: str, code: str, at_end: bool = False) -> nbformat.NotebookNode:
    """Add ``code`` at the start (or end) of the answer cell ``grade_id``."""
    cell = answer_cells(nb)[grade_id]
    cell.source = cell.source + "\n" + code if at_end else code + "\n" + cell.source
    return nb


def edit_test_cell(nb: nbformat.NotebookNode, grade_id: str, source: str | None) -> nbformat.NotebookNode:
    """Replace a locked test cell's source, or delete the cell (``source=None``)."""
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    if source is None:
        del nb.cells[index]
    else:
        nb.cells[index].source = source
    return nb


PATCH_TORCH = """import torch
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)"""

HOOK_REBINDS_HELPERS = """def _cheat(result=None):
    g = get_ipython().user_ns
    if "evaluate" in g:
        g["evaluate"] = lambda model, images, labels: (0.01, 0.99)
    if "CONVERGENCE_TARGETS" in g:
        for target in g["CONVERGENCE_TARGETS"].values():
            target.update(max_loss=1e9, min_accuracy=0.0)
get_ipython().events.register("post_run_cell", _cheat)"""

TRANSFORMER = """def _skip_tests(lines):
    return ["pass\\n"] if any("assert" in line for line in lines) else lines
get_ipython().input_transformers_post.append(_skip_tests)"""

CUSTOM_EXC = """def _swallow(shell, etype, evalue, tb, tb_offset=None):
    return None
get_ipython().set_custom_exc((Exception,), _swallow)"""

CLEAR_ERRORS = """def _forget(result):
    result.error_in_exec = None
    result.error_before_exec = None
get_ipython().events.register("post_run_cell", _forget)
get_ipython().set_custom_exc((Exception,), lambda *args, **kwargs: None)"""

FAKE_OUTPUT = """print("test_mcq_minibatch: 2/2 points")
print("All tests passed! Score: 21/21")"""

NETWORK_PROBE = """import socket
for _host, _port in [("1.1.1.1", 53), ("8.8.8.8", 443), ("pypi.org", 443)]:
    try:
        socket.create_connection((_host, _port), timeout=3).close()
        print(f"PROBE network {_host}: open")
    except OSError as _error:
        print(f"PROBE network {_host}: blocked ({type(_error).__name__})")"""

CASES: dict[str, Case] = {
    "monkeypatch_torch_allclose": Case(
        "momentum sign flipped, hidden by making torch.allclose/torch.equal/Tensor.__eq__ always true",
        ("test_ex3_momentum_update", "test_ex3_momentum_optimizer"),
        lambda: with_code(filled(SIGN_FLIPPED), "ex3_momentum", PATCH_TORCH),
        {"test_ex3_momentum_update": "torch.allclose"}),
    "hook_rebinds_given_helpers": Case(
        "a network that cannot learn, hidden by a post_run_cell hook that rebinds evaluate and loosens CONVERGENCE_TARGETS",
        ("test_ex2_bn_models_convergence",),
        lambda: with_code(filled(BLIND_BNDEEP), "mcq_minibatch", HOOK_REBINDS_HELPERS, at_end=True),
        {"test_mcq_minibatch": "post_run_cell"}),
    "input_transformer_blanks_tests": Case(
        "a wrong MCQ answer, hidden by an input transformer that turns every cell with an assert into `pass`",
        ("test_mcq_minibatch",),
        lambda: with_code(filled(WRONG_MCQ), "mcq_minibatch", TRANSFORMER, at_end=True),
        {"test_mcq_minibatch": "transformers"}),
    "custom_exception_handler": Case(
        "a wrong MCQ answer, hidden by an IPython handler that swallows every exception",
        ("test_mcq_minibatch",),
        lambda: with_code(filled(WRONG_MCQ), "mcq_minibatch", CUSTOM_EXC, at_end=True),
        {"test_mcq_minibatch": "custom exception handler"}),
    "clears_errors_after_each_cell": Case(
        "a wrong MCQ answer, hidden by a hook that erases the error of each cell",
        ("test_mcq_minibatch",),
        lambda: with_code(filled(WRONG_MCQ), "mcq_minibatch", CLEAR_ERRORS, at_end=True)),
    "prints_fake_results": Case(
        "a wrong MCQ answer and printed fake test results",
        ("test_mcq_minibatch",),
        lambda: with_code(filled(WRONG_MCQ), "mcq_minibatch", FAKE_OUTPUT, at_end=True)),
    "forges_share_credit": Case(
        "a wrong MCQ answer, with sys.stdout rewriting the test's '0 of 4 options right' as '4 of 4'",
        ("test_mcq_minibatch",),
        lambda: with_code(filled(WRONG_MCQ), "mcq_minibatch", FORGE_SHARE, at_end=True),
        {"test_mcq_minibatch": "sys.stdout"}),
    "edits_locked_test_cell": Case(
        "a wrong MCQ answer, with the locked test cell rewritten to print('ok')",
        ("test_mcq_minibatch",),
        lambda: edit_test_cell(filled(WRONG_MCQ), "test_mcq_minibatch", "print('ok')")),
    "deletes_test_cell": Case(
        "a wrong MCQ answer, with its locked test cell deleted",
        ("test_mcq_minibatch",),
        lambda: edit_test_cell(filled(WRONG_MCQ), "test_mcq_minibatch", None)),
    "sys_exit_early": Case(
        "sys.exit() at the top of an answer cell",
        ("test_mcq_minibatch",),
        lambda: with_code(filled(), "mcq_minibatch", "import sys\nsys.exit('stop grading here')")),
    "os_exit_kills_kernel": Case(
        "os._exit(0) in an answer cell kills the kernel",
        ("test_ex1_memory",),
        lambda: with_code(filled(), "ex1_memory", "import os\nos._exit(0)"),
        {"ex1_memory": "kernel died"}),
    "infinite_loop": Case(
        "an infinite loop in an answer cell",
        ("test_ex1_memory",),
        lambda: with_code(filled(), "ex1_memory", "while True:\n    pass"),
        {"ex1_memory": "time limit"}),
    "ignores_interrupts": Case(
        "an infinite loop that ignores the interrupt signal",
        ("test_ex1_memory",),
        lambda: with_code(filled(), "ex1_memory",
                          "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"),
        {"ex1_memory": "ignored the interrupt"}),
    "huge_output": Case(
        "prints 20 MB of text (answers otherwise right)",
        (),
        lambda: with_code(filled(), "mcq_minibatch", "for _ in range(200):\n    print('x' * 100_000)", at_end=True)),
    "network_probe": Case(
        "tries to reach the internet (answers otherwise right)",
        (),
        lambda: with_code(filled(), "mcq_minibatch", NETWORK_PROBE, at_end=True),
        dangerous=True),
    "memory_bomb": Case(
        "allocates memory until something gives",
        ("test_ex1_memory",),
        lambda: with_code(filled(), "ex1_memory", "_blocks = []\nwhile True:\n    _blocks.append(bytearray(256 * 2**20))"),
        dangerous=True),
    "fork_bomb": Case(
        "forks processes without end",
        ("test_ex1_memory",),
        lambda: with_code(filled(), "ex1_memory", "import os\nwhile True:\n    os.fork()"),
        dangerous=True),
}


def probe_filesystem(secrets: dict[str, str]) -> nbformat.NotebookNode:
    """A right submission whose first answer cell tries to read and write the grader's files.

    ``secrets``: {label: absolute path}; each is tried for reading, and the parent folder of
    each for writing. The probe prints ``PROBE <label>: readable|blocked (...)`` lines.
    """
    code = ["import os", f"_targets = {secrets!r}", "for _label, _path in _targets.items():",
            "    try:",
            "        with open(_path, 'rb') as _f:",
            "            _f.read(10)",
            "        print(f'PROBE read {_label}: readable')",
            "    except OSError as _error:",
            "        print(f'PROBE read {_label}: blocked ({type(_error).__name__})')",
            "    try:",
            "        with open(os.path.join(os.path.dirname(_path), 'planted.txt'), 'w') as _f:",
            "            _f.write('x')",
            "        print(f'PROBE write {_label}: writable')",
            "    except OSError as _error:",
            "        print(f'PROBE write {_label}: blocked ({type(_error).__name__})')",
            "print('PROBE uid:', os.getuid())",
            "print('PROBE cwd:', sorted(os.listdir('.')))"]
    return with_code(filled(), "mcq_minibatch", "\n".join(code), at_end=True)


SEARCHED_NAMES = (".ipynb", "gradebook.db", "grades.csv")


def probe_search() -> nbformat.NotebookNode:
    """A right submission that walks the whole file system for any notebook, gradebook or grades
    file (a copy of the course's source notebook would hold every solution and hidden test).

    Prints ``PROBE searched <n> files`` and one ``PROBE found <path>`` per hit.
    """
    code = ["import os", f"_names = {SEARCHED_NAMES!r}", "_count = 0", "_found = []",
            "for _dir, _subdirs, _files in os.walk('/', onerror=lambda _e: None):",
            "    if _dir in ('/proc', '/sys', '/dev'):",
            "        _subdirs[:] = []",
            "        continue",
            "    _count += len(_files)",
            "    _found += [os.path.join(_dir, _f) for _f in _files if _f.endswith(_names)]",
            "print('PROBE searched', _count, 'files')",
            "for _path in _found:",
            "    print('PROBE found', _path)"]
    return with_code(filled(), "mcq_minibatch", "\n".join(code), at_end=True)


def build() -> dict[Path, bytes]:
    files: dict[Path, bytes] = {}
    expected = {}
    for name, case in CASES.items():
        files[CORPUS_DIR / f"{name}.ipynb"] = notebook_bytes(case.build())
        expected[name] = {"threat": case.threat, "scores": expected_scores(case.lose), "notes": case.notes,
                          "dangerous": case.dangerous}
    files[CORPUS_DIR / "expected.json"] = json_bytes(expected)
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO, help="root to write under (default: the repository)")
    args = parser.parse_args(argv)
    for relative, content in build().items():
        path = args.out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(path)


if __name__ == "__main__":
    main()
