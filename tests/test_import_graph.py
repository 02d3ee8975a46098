"""The import graph of the package code (nst_tf, magenta_compat, torch_compat) has no circle.

Counted: every ``import x`` / ``from x import y`` statement anywhere in a module, at module
level or inside a function or class (a function-level import is still a dependency, only a later
one), relative imports resolved. ``from package import name`` points at the submodule
``package.name`` when that is a module, else at ``package``. Importing ``a.b.c`` also runs the
``__init__`` of ``a.b`` (and ``a``), so those count too, except the importer's own parent
packages (already being initialized when it runs).

Not counted: names looked up at run time through ``importlib`` by the registries of plug-ins
(:data:`nst_tf.families.FAMILIES`, :data:`nst_tf.training.RECIPES`) and the lazy public names
of ``nst_tf/__init__.py`` (:mod:`nst_tf._lazy`). They are how the layers above are found without
the layers below importing them: a registry names its entries, it does not depend on them.
"""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("nst_tf", "magenta_compat", "torch_compat")


def _modules():
    """``{dotted name: (path, is_package)}`` of every module of the packages."""
    modules = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                is_package = parts[-1] == "__init__"
                if is_package:
                    parts = parts[:-1]
                modules[".".join(parts)] = (path, is_package)
    return modules


def _ancestors(name):
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _imports(name, path, is_package, modules):
    """The modules of the packages that the module ``name`` imports (directly)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = name if is_package else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in modules else source)
    found = set()
    for target in targets:
        while target and target not in modules:   # "import a.b.c" of a name inside a module
            target = target.rpartition(".")[0]
        if not target:
            continue                                # not ours: stdlib, TensorFlow, ...
        found.add(target)
        found.update(a for a in _ancestors(target) if a not in _ancestors(name))
    found.discard(name)
    return found


def import_graph():
    """``{module: set of modules it imports}`` over the package code."""
    modules = _modules()
    return {name: _imports(name, path, is_package, modules)
            for name, (path, is_package) in modules.items()}


def circles(graph):
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_level_and_package_imports():
    graph = import_graph()
    # A function-level import (families.py reads checkpoint shapes only when needed).
    assert "magenta_compat.checkpoint" in graph["nst_tf.families"]
    # Importing nst_tf.training.trainer runs nst_tf/training/__init__.py too.
    assert {"nst_tf.training", "nst_tf.training.trainer"} <= graph["nst_tf.models.adain.recipe"]
    # ... but a module does not depend on its own package's __init__.
    assert "nst_tf.training" not in graph["nst_tf.training.train"]


def test_no_import_circle_in_the_package_code():
    graph = import_graph()
    found = circles(graph)
    lines = []
    for component in found:
        members = set(component)
        lines.append(" <-> ".join(component) + ": " + "; ".join(
            f"{a} imports {', '.join(sorted(graph[a] & members))}" for a in component))
    assert not found, "import circles:\n" + "\n".join(lines)
