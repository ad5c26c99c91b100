"""The kernel's guard (``autograder/kernel/guard.py``) in an in-process IPython shell: no kernel, no grader.

Each test starts from a fresh shell, defines the "locked" names a notebook would, records them, lets a
"submission" tamper with something, and checks that ``restore`` puts it back and names it.
"""
from __future__ import annotations

import json
import math
import sys

import pytest
from IPython.core.interactiveshell import InteractiveShell

from autograder import kernel
from autograder.kernel import guard

pytestmark = pytest.mark.fast

LOCKED = "def helper(x):\n    return x + 1\nSIZES = [1, 2]\nclass Box:\n    size = 3\n"


@pytest.fixture
def shell():
    InteractiveShell.clear_instance()
    ip = InteractiveShell.instance()
    saved_sqrt = math.sqrt
    ip.run_cell(LOCKED)
    yield ip
    math.sqrt = saved_sqrt  # a failing test must not leave math patched for the next one
    sys.settrace(None)
    InteractiveShell.clear_instance()


@pytest.fixture
def watch(shell):
    g = guard.install(shell, modules=["math"], classes=[], kernel_managed=guard.KERNEL_MANAGED,
                      trusted_callbacks=guard.TRUSTED_CALLBACK_MODULES)
    assert g.record(["helper", "SIZES", "Box"]) == "[]"
    return g


def repaired(g) -> list[str]:
    return json.loads(g.restore())


def test_an_untouched_kernel_needs_no_repair(shell, watch):
    assert repaired(watch) == []
    assert shell.user_ns["helper"](1) == 2


def test_a_redefined_helper_is_put_back(shell, watch):
    shell.run_cell("def helper(x):\n    return 0")
    assert repaired(watch) == ["helper"]
    assert shell.user_ns["helper"](1) == 2


def test_a_helper_whose_code_was_swapped_in_place_is_put_back(shell, watch):
    shell.run_cell("helper.__code__ = (lambda x: -1).__code__")
    watch.restore()  # not named among the repairs: restore puts the code back before it compares
    assert shell.user_ns["helper"](1) == 2


def test_data_edited_in_place_is_put_back(shell, watch):
    shell.run_cell("SIZES.append(99)")
    assert repaired(watch) == ["SIZES"]
    assert shell.user_ns["SIZES"] == [1, 2]


def test_a_class_attribute_added_or_changed_is_undone(shell, watch):
    shell.run_cell("Box.size = 0\nBox.extra = 1")
    watch.restore()  # not named among the repairs: the class object itself is still the recorded one
    assert shell.user_ns["Box"].size == 3 and not hasattr(shell.user_ns["Box"], "extra")


def test_a_monkeypatched_library_function_is_put_back(shell, watch):
    shell.run_cell("import math\nmath.sqrt = lambda x: 4.0")
    assert repaired(watch) == ["math.sqrt"]
    assert math.sqrt(9) == 3.0


def test_input_transformers_and_custom_exception_handlers_are_removed(shell, watch):
    shell.run_cell("get_ipython().input_transformers_post.append(lambda lines: lines)\n"
                   "get_ipython().set_custom_exc((AssertionError,), lambda *a, **k: None)")
    assert repaired(watch) == ["IPython custom exception handler", "IPython input/AST transformers"]
    assert shell.input_transformers_post == [] and not shell.custom_exceptions


def test_a_method_replaced_on_the_shell_object_is_removed(shell, watch):
    shell.run_cell("get_ipython().run_cell = lambda *a, **k: None")
    assert repaired(watch) == ["IPython shell.run_cell"]
    assert "run_cell" not in vars(shell)


def test_a_trace_hook_is_removed(shell, watch):
    shell.run_cell("import sys\nsys.settrace(lambda *a: None)")
    assert repaired(watch) == ["sys trace/profile hook"]
    assert sys.gettrace() is None


def test_a_foreign_event_callback_is_dropped_and_a_trusted_one_kept(shell, watch):
    shell.run_cell("get_ipython().events.register('pre_run_cell', lambda *a: None)")
    assert repaired(watch) == ["IPython pre_run_cell callbacks"]
    assert shell.events.callbacks["pre_run_cell"] == []


def test_names_defined_later_are_recorded_and_guarded_too(shell, watch):
    shell.run_cell("LATER = {'a': 1}")
    watch.record(["LATER"])
    shell.run_cell("LATER['a'] = 2")
    assert repaired(watch) == ["LATER"]
    assert shell.user_ns["LATER"] == {"a": 1}


def test_the_guard_travels_by_its_source_and_answers_in_json(shell):
    """The grader's path: ``install_code`` runs the module's source in the shell, ``call_expression``
    asks it through ``user_expressions`` (outside any cell), ``parse_answer`` reads the JSON back."""
    token = kernel.new_token()
    options = {"modules": ["math"], "classes": [], "kernel_managed": guard.KERNEL_MANAGED,
               "trusted_callbacks": guard.TRUSTED_CALLBACK_MODULES}
    assert shell.run_cell(kernel.install_code(guard, token, **options)).success

    def ask(method, *args):
        answer = shell.user_expressions({"a": kernel.call_expression(token, method, *args)})["a"]
        assert answer["status"] == "ok", answer
        return kernel.parse_answer(answer["data"]["text/plain"])

    assert ask("record", ["helper"]) == []
    shell.run_cell("def helper(x):\n    return 0\nimport math\nmath.sqrt = abs")
    assert ask("restore") == ["helper", "math.sqrt"]
    assert ask("restore") == []
    assert token not in shell.user_ns  # reached through builtins, not through a name the student sees


def test_parse_answer_refuses_anything_but_a_json_string():
    assert kernel.parse_answer(repr(json.dumps([1, "a"]))) == [1, "a"]
    with pytest.raises(ValueError, match="expected a JSON string"):
        kernel.parse_answer("[1, 2]")


# --- the pure helpers ---------------------------------------------------------------------------

def test_freeze_copies_data_and_keeps_code_of_functions():
    data = {"a": [1]}
    frozen = guard._freeze(data)
    data["a"].append(2)
    assert frozen == ("data", {"a": [1]})

    def f():
        return 1
    kind, fn, code, *_ = guard._freeze(f)
    assert (kind, fn, code) == ("function", f, f.__code__)
    assert guard._freeze(math)[0] == "ref"
    assert guard._freeze(Exception)[0] == "class"


def test_same_compares_by_type_and_value_and_never_raises():
    class Angry:
        def __eq__(self, other):
            raise RuntimeError("no")
    assert guard._same([1, 2], [1, 2])
    assert not guard._same(1, 1.0)  # another type is a change, even when equal
    assert not guard._same(Angry(), Angry())


def test_restore_class_reports_each_changed_key():
    class C:
        x = 1
    saved = dict(C.__dict__)
    C.x, C.y = 2, 3
    changes: list[str] = []
    guard._restore_class(C, saved, changes)
    assert sorted(changes) == ["test_restore_class_reports_each_changed_key.<locals>.C.x",
                               "test_restore_class_reports_each_changed_key.<locals>.C.y"]
    assert C.x == 1 and not hasattr(C, "y")
