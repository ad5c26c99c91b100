"""The layer contract of ``autograder/__init__.py``, checked on the source: every import, at module level
or inside a function, read with ``ast`` (nothing is imported)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

PACKAGE = Path(__file__).resolve().parents[1] / "autograder"
SUBPACKAGES = ("kernel", "grading", "authoring", "marking", "reports", "platforms")
# who may import whom: a layer's own modules, the foundation (top-level modules) and the layers listed
ALLOWED = {
    "foundation": set(),
    "kernel": set(),
    "grading": {"kernel"},
    "authoring": {"kernel", "grading"},
    "marking": {"grading"},
    "reports": {"grading"},
    "platforms": {"grading", "reports"},
}
ENTRY_POINTS = {"autograder.__main__": None,  # the command line may reach every layer
                "autograder.settings": {"autograder.grading.settings"}}  # the public name of nbgrader's settings
# run without the package: zygote.py is bound alone into the sandbox, guard and probe are sent by their source
STANDALONE = {"autograder.kernel.zygote", "autograder.kernel.guard", "autograder.kernel.probe"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in SUBPACKAGES else "foundation"


def imports(source: str, module: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import of ``source`` that runs (not those under
    ``if TYPE_CHECKING:``, which only type checkers read); ``from autograder.x import y`` counts as
    ``autograder.x.y`` when that is a module of the package."""
    tree = ast.parse(source)
    top = {id(node) for node in tree.body}
    typing_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                   for inner in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                package = module.split(".")[: -node.level] if not module.endswith("__init__") else module.split(".")
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").is_file() or \
                    (PACKAGE.parent / Path(*candidate.split(".")) / "__init__.py").is_file()
                found.append((candidate if is_module else base, node.lineno, id(node) in top))
    return found


def package_imports(edit: dict[str, str] | None = None) -> dict[str, list[tuple[str, int, bool]]]:
    """Every module of the package -> its imports; ``edit`` replaces some modules' source (the tests' plants)."""
    edit = edit or {}
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        graph[name] = imports(edit.get(name, path.read_text()), name)
    return graph


def violations(graph: dict[str, list[tuple[str, int, bool]]]) -> list[str]:
    """The imports that break the contract, as readable lines."""
    found = []
    for module, edges in graph.items():
        for target, line, top_level in edges:
            own = f"{module.replace('.', '/')}.py:{line}"
            if not (target == "autograder" or target.startswith("autograder.")):
                if layer(module) == "kernel" and top_level and target.split(".")[0] not in sys.stdlib_module_names:
                    found.append(f"{own}: kernel-side code imports {target} at module level (standard library only)")
                continue
            if target == "autograder":
                continue
            if module in ENTRY_POINTS:
                allowed = ENTRY_POINTS[module]
                if allowed is not None and target not in allowed:
                    found.append(f"{own}: {module} may import only {sorted(allowed)}, not {target}")
                continue
            if module in STANDALONE:
                found.append(f"{own}: {module} runs without the package and may not import {target}")
                continue
            if target in ENTRY_POINTS:
                found.append(f"{own}: {target} is an entry point; import its code from where it lives")
                continue
            mine, theirs = layer(module), layer(target)
            if theirs not in {mine, "foundation"} | ALLOWED[mine] or (mine == "kernel" and theirs != "kernel"):
                found.append(f"{own}: the {mine} layer may not import {target} (layer {theirs})")
    return found


def cycles(graph: dict[str, list[tuple[str, int, bool]]]) -> list[list[str]]:
    """Import cycles between the package's modules (each found once, from its smallest member)."""
    edges = {m: sorted({t for t, _, _ in e if t in graph and t != m}) for m, e in graph.items()}
    found = []

    def visit(start, node, path):
        for nxt in edges[node]:
            if nxt == start:
                found.append(path)
            elif nxt > start and nxt not in path:
                visit(start, nxt, path + [nxt])

    for start in sorted(edges):
        visit(start, start, [start])
    return found


def test_every_import_keeps_to_the_layers():
    assert violations(package_imports()) == []


def test_the_modules_import_one_another_without_cycles():
    assert cycles(package_imports()) == []


def test_kernel_side_modules_import_only_the_standard_library_at_module_level():
    kernel = {m: e for m, e in package_imports().items() if layer(m) == "kernel"}
    assert {"autograder.kernel.sandbox", "autograder.kernel.zygote", "autograder.kernel.guard"} <= set(kernel)
    for module, edges in kernel.items():
        for target, line, top_level in edges:
            if top_level and not target.startswith("autograder.kernel"):
                assert target.split(".")[0] in sys.stdlib_module_names, f"{module}:{line} imports {target}"


def test_every_module_belongs_to_a_layer_the_contract_names():
    for module in package_imports():
        assert layer(module) in ALLOWED, module
    init = (PACKAGE / "__init__.py").read_text()
    for name in SUBPACKAGES:
        assert f"{name}/" in init, f"autograder/__init__.py's contract does not describe {name}/"


# --- the checks catch what they must ------------------------------------------------------------

@pytest.mark.parametrize("module, plant", [
    ("autograder.kernel.guard", "import numpy\n"),  # a third-party library in the kernel's guard
    ("autograder.kernel.sandbox", "from autograder.grading import results\n"),  # kernel side reaching up
    ("autograder.text", "from autograder.grading.grade import grade\n"),  # foundation importing a layer
    ("autograder.grading.grade", "def f():\n    from autograder.marking import export\n"),  # in a function
    ("autograder.grading.results", "from autograder.settings import nbgrader_config\n"),  # the shim, not the code
    ("autograder.kernel.zygote", "from autograder.kernel import sandbox\n"),  # a standalone file
])
def test_a_planted_violation_is_caught(module, plant):
    path = PACKAGE.parent / Path(*module.split(".")).with_suffix(".py")
    found = violations(package_imports({module: path.read_text() + plant}))
    assert len(found) == 1 and module.replace(".", "/") in found[0], found


def test_a_planted_cycle_is_caught():
    path = PACKAGE / "text.py"
    graph = package_imports({"autograder.text": path.read_text() + "from autograder import csvfiles\n"})
    assert ["autograder.csvfiles", "autograder.text"] in cycles(graph)
