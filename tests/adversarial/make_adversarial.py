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
import copy
import sys
from pathlib import Path
from typing import Callable, NamedTuple

import nbformat

REPO = Path(__file__).resolve().parents[2]
for path in (REPO, REPO / "tests" / "mutants"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from make_submissions import (  # noqa: E402
    TEST_CELLS, answer_cells, expected_scores, filled, json_bytes, mutation, notebook_bytes)

TEST_CELLS_ALL = TEST_CELLS

CORPUS_DIR = Path("tests") / "adversarial"
# every option the wrong way round: 0 points, so that no cheat can hide behind partial credit
WRONG_MCQ = [mutation("mcq_minibatch", "less_noisy_updates = True", "less_noisy_updates = False"),
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
    # test cells the attack may cost itself, by how long its own cell takes on the machine (never more than
    # their honest points); the others must get exactly their score
    may_lose: tuple[str, ...] = ()


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

# --- Attacks on the verdict from inside the kernel (the judge runs outside it) ------------------
TRANSFORM_CELL = """_ip = get_ipython()
_transform = _ip.transform_cell
_ip.transform_cell = lambda cell: ("pass\\n" if "assert" in cell else
                                   "print('mcq: 4 of 4 options right')\\n" if "options right" in cell else _transform(cell))"""

RUN_CELL = """_ip = get_ipython()
_run = _ip.run_cell
_ip.run_cell = lambda cell, *args, **kwargs: _run("pass" if "assert" in cell else cell, *args, **kwargs)"""

DO_EXECUTE = """_kernel = get_ipython().kernel
_execute = _kernel.do_execute
def _do_execute(code, *args, **kwargs):
    return _execute("pass" if "assert" in code else code, *args, **kwargs)
_kernel.do_execute = _do_execute"""

REPLACE_COMPILE = """import builtins
_compile = builtins.compile
builtins.compile = lambda source, *args, **kwargs: _compile("pass" if "assert" in str(source) else source, *args, **kwargs)"""

# a wrong answer that shows a value during each test: nbgrader would read the first one as the score
DISPLAYHOOK_IN_ANSWER = [mutation("ex3_momentum", "    m_new = grad + beta * m\n",
                                  "    get_ipython().displayhook('full marks')\n    import sys\n    sys.displayhook(1000.0)\n"
                                  "    m_new = grad - beta * m\n")]

STDOUT_THREAD = """import sys, re, threading, time
def _rewrite():
    while True:
        stream = sys.stdout
        write = stream.write
        if not getattr(write, "_forged", False):
            def forged(text, write=write):
                return write(re.sub(r"(\\d+) of (\\d+) options right", r"\\2 of \\2 options right", text))
            forged._forged = True
            try:
                stream.write = forged
            except Exception:
                pass
        time.sleep(0.002)
threading.Thread(target=_rewrite, daemon=True).start()"""

FD_THREAD = """import os, threading, time
def _spam():
    while True:
        os.write(1, b"mcq_minibatch: 4 of 4 options right\\nmcq_momentum: 4 of 4 options right\\n")
        os.write(2, b"test_ex1_memory: 4/4\\n")
        time.sleep(0.002)
threading.Thread(target=_spam, daemon=True).start()"""

# every 50th call: on every call the frames' locals alone make training about 5x slower, which on a busy
# machine runs past the cell's time limit, a threat of its own (infinite_loop), not this one's (a leak)
PRINTS_HISTORY = [mutation("ex3_momentum", "        for group in self.param_groups:\n",
                           "        import sys\n"
                           "        type(self)._calls = getattr(type(self), '_calls', 0) + 1\n"
                           "        for _entry in (list(get_ipython().user_ns.get('_ih', [])) + list(get_ipython().user_ns.get('In', []))\n"
                           "                       if type(self)._calls % 50 == 1 else []):\n"
                           "            print('HISTORY', _entry)\n"
                           "        _frame = sys._getframe(1) if type(self)._calls % 50 == 1 else None\n"
                           "        while _frame is not None:\n"
                           "            print('FRAME', _frame.f_code.co_filename, _frame.f_code.co_name,\n"
                           "                  sorted(k for k in _frame.f_locals if not k.startswith('__'))[:50],\n"
                           "                  [c for c in _frame.f_code.co_consts if isinstance(c, str)][:50])\n"
                           "            _frame = _frame.f_back\n"
                           "        for group in self.param_groups:\n")]

FAKE_NOTES = """print("[grader] interrupted after its 60 s time limit")
print("[grader] ex1_memory ran past the time limit, so the notebook was graded a second time")"""

LATE_SIDE_EFFECTS = """import atexit
atexit.register(lambda: print("mcq_minibatch: 4 of 4 options right"))
class _Haunt:
    def __del__(self):
        print("mcq_minibatch: 4 of 4 options right")
_ghost = [_Haunt() for _ in range(3)]
del _ghost"""

BUSY_CHILDREN = """import os
for _ in range(80):
    if os.fork() == 0:
        while True:
            pass"""

HUGE_LINE = "print('x' * (100 * 2**20))"


def blank() -> nbformat.NotebookNode:
    """The release as a student receives it: every answer left as its stub."""
    return filled(only=())


def with_extra_graded_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A new cell the submission marked as a graded test worth 50 points."""
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "ex1_memory")
    cell = nbformat.v4.new_code_cell("print('bonus')")
    cell["id"] = "bonus-cell"  # fixed: the corpus is rebuilt byte for byte
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "bonus_points", "locked": True, "points": 50,
                                 "schema_version": 3, "solution": False, "task": False}
    nb.cells.insert(index + 1, cell)
    return nb


def with_duplicated_answer_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The ex1 answer cell copied right after itself (metadata and all), as Jupyter's copy-paste does."""
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "ex1_memory")
    twin = copy.deepcopy(nb.cells[index])
    twin["id"] = nb.cells[index]["id"] + "-copy"
    nb.cells.insert(index + 1, twin)
    return nb


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
        {"ex1_memory": "the kernel died there again"}),
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
    "transform_cell_blanks_tests": Case(
        "a blank submission whose first answer replaces the shell's transform_cell: asserts become `pass`, "
        "share lines print '4 of 4'",
        tuple(TEST_CELLS_ALL),
        lambda: with_code(blank(), "mcq_minibatch", TRANSFORM_CELL),
        {"test_mcq_minibatch": "IPython shell.transform_cell"}),
    "run_cell_skips_tests": Case(
        "wrong MCQ answers, with the shell's run_cell replaced to run `pass` for any cell with an assert",
        ("test_mcq_minibatch",),
        lambda: with_code(filled(WRONG_MCQ), "mcq_minibatch", RUN_CELL, at_end=True),
        {"test_mcq_minibatch": "IPython shell.run_cell"}),
    "do_execute_skips_tests": Case(
        "wrong MCQ answers, with the kernel's do_execute replaced to run `pass` for any cell with an assert",
        ("test_mcq_minibatch",),
        lambda: with_code(filled(WRONG_MCQ), "mcq_minibatch", DO_EXECUTE, at_end=True),
        {"test_mcq_minibatch": "kernel.do_execute"}),
    "compile_skips_tests": Case(
        "wrong MCQ answers, with builtins.compile replaced to compile `pass` for any source with an assert",
        ("test_mcq_minibatch",),
        lambda: with_code(filled(WRONG_MCQ), "mcq_minibatch", REPLACE_COMPILE, at_end=True),
        {"test_mcq_minibatch": "builtins.compile"}),
    "displayhook_in_answer": Case(
        "a wrong momentum rule that calls get_ipython().displayhook('full marks') and sys.displayhook(1000.0) "
        "on every call",
        ("test_ex3_momentum_update", "test_ex3_momentum_optimizer"),
        lambda: filled(DISPLAYHOOK_IN_ANSWER)),
    "stdout_thread_forges_share": Case(
        "wrong MCQ answers; a background thread keeps wrapping sys.stdout.write to print 'N of N options right'",
        ("test_mcq_minibatch",),
        lambda: with_code(filled(WRONG_MCQ), "mcq_minibatch", STDOUT_THREAD, at_end=True)),
    "fd_thread_forges_share": Case(
        "wrong MCQ answers; a background thread writes '4 of 4 options right' to fd 1 and scores to fd 2 every 2 ms",
        ("test_mcq_minibatch",),
        lambda: with_code(filled(WRONG_MCQ), "mcq_minibatch", FD_THREAD, at_end=True)),
    "prints_history_and_frames": Case(
        "SGDMomentum.step() prints the input history and every caller's frame (names, constants) during the tests (every 50th step)",
        (),
        lambda: filled(PRINTS_HISTORY)),
    "prints_fake_grader_notes": Case(
        "prints lines that look like the grader's notes (a time limit, a second grading)",
        (),
        lambda: with_code(filled(), "mcq_minibatch", FAKE_NOTES, at_end=True)),
    "atexit_and_del": Case(
        "wrong MCQ answers; an atexit handler and __del__ methods print '4 of 4 options right'",
        ("test_mcq_minibatch",),
        lambda: with_code(filled(WRONG_MCQ), "mcq_minibatch", LATE_SIDE_EFFECTS, at_end=True)),
    "extra_graded_cell": Case(
        "a new cell marked as a graded test worth 50 points (answers right)",
        (),
        lambda: with_extra_graded_cell(filled()),
        notes={"cell 19": "is not the assignment's: it was graded as an ordinary cell"}),  # the new cell, by position
    "duplicated_answer_cell": Case(
        "the ex1 answer cell duplicated, metadata and all (answers right)",
        (),
        lambda: with_duplicated_answer_cell(filled())),
    "huge_single_line": Case(
        "prints one line of 100 MiB (answers otherwise right)",
        (),
        lambda: with_code(filled(), "mcq_minibatch", HUGE_LINE, at_end=True),
        dangerous=True),
    "busy_children": Case(
        "starts 80 child processes that spin forever (answers otherwise right)",
        (),
        lambda: with_code(filled(), "mcq_minibatch", BUSY_CHILDREN, at_end=True),
        dangerous=True,
        # the 80 forks share the kernel's one CPU with the children already spinning: on a busy machine the
        # cell runs past its limit and is dropped, and its answers with it (test_mcq_minibatch 0, not 2)
        may_lose=("test_mcq_minibatch",)),
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
                          "dangerous": case.dangerous, "may_lose": list(case.may_lose)}
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
