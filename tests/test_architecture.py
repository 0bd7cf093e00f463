"""The package's import graph: no circle, and no module imports one from a layer above its own.

Every ``import``/``from ... import`` of this package is counted, at module level and inside
functions alike (a lazy import is still a dependency). A new module must be given a layer here.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "recbole_llmaug"

# Lowest first. A module may import modules of its own layer or of lower layers only.
LAYERS = [
    ("base", ["recbole_llmaug", "recbole_llmaug.errors", "recbole_llmaug.compat", "recbole_llmaug.defaults"]),
    ("files and services", ["recbole_llmaug.data.folders", "recbole_llmaug.augment.atomic", "recbole_llmaug.augment.manifest",
                            "recbole_llmaug.augment.text", "recbole_llmaug.augment.files", "recbole_llmaug.augment.outputs",
                            "recbole_llmaug.llm"]),
    ("augmentation", ["recbole_llmaug.augment"]),
    ("datasets", ["recbole_llmaug.data"]),
    ("models", ["recbole_llmaug.model"]),
    ("evaluation and trainers", ["recbole_llmaug.evaluator", "recbole_llmaug.trainer"]),
    ("lookups and reports", ["recbole_llmaug.utils", "recbole_llmaug.report"]),
    ("config", ["recbole_llmaug.config"]),
    ("runs", ["recbole_llmaug.quick_start"]),
    ("search", ["recbole_llmaug.tune", "recbole_llmaug.hyper_tuning"]),
    ("command line", ["recbole_llmaug.cli"]),
]


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules():
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(path, known):
    """Modules of this package that ``path`` imports (``from a import b`` counts ``a.b`` when it is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] == "recbole_llmaug" and name in known)
    return found


def graph():
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def layer_of(name):
    best, rank = None, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > len(best)):
                best, rank = prefix, index
    return rank


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_circle_and_an_upward_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("recbole_llmaug.model.sequential_recommender.llmesr") > layer_of("recbole_llmaug.data.llmesr")
    assert layer_of("recbole_llmaug.data.folders") < layer_of("recbole_llmaug.data.llmesr")


def test_the_import_graph_has_no_circle():
    assert cycles(graph()) == []


def test_every_module_has_a_layer():
    assert [name for name in modules() if layer_of(name) is None] == []


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [
        f"{name} ({LAYERS[layer_of(name)][0]}) imports {other} ({LAYERS[layer_of(other)][0]})"
        for name, targets in graph().items() for other in sorted(targets)
        if layer_of(other) is not None and layer_of(name) is not None and layer_of(other) > layer_of(name)
    ]
    assert upward == []


# Private attributes read outside ``compat.py`` on purpose, each with why there is no public way.
PRIVATE_ALLOWED = {
    ("benchmarks/harness/cli.py", "_actions"): "argparse lists a parser's arguments only there",
}


def private_uses(path, relative):
    """``obj._name`` reads in ``path`` other than on ``self``, ``cls`` or ``super()`` (dunders aside)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
            continue
        if (relative, node.attr) not in PRIVATE_ALLOWED:
            found.append(f"{relative}:{node.lineno} {ast.unparse(node)}")
    return found


def test_the_private_use_checker_finds_one(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f(trainer):\n    self._ok = 1\n    return trainer._train_epoch(1, 2)\n")
    assert private_uses(source, "m.py") == ["m.py:3 trainer._train_epoch"]


def test_private_attributes_of_other_objects_are_read_only_in_compat():
    """A private RecBole call (or one of another module of ours) breaks silently on an upgrade: it belongs
    in ``compat.py``, the one place to check when RecBole changes, or behind a public name."""
    root = PACKAGE.parent
    paths = [*PACKAGE.rglob("*.py"), *(root / "benchmarks").rglob("*.py"), root / "run_recbole_llmaug.py"]
    found = [use for path in sorted(paths) if path.name != "compat.py"
             for use in private_uses(path, path.relative_to(root).as_posix())]
    assert found == []
