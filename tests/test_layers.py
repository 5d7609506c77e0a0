"""The package's imports point one way and never in a circle (DESIGN.md, "Layout"), read from the source with ast.

An import inside a function counts (it is still an arrow); one under ``if TYPE_CHECKING:`` does not (it never runs).
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository root is the package ``dagmix``

ALLOWED: dict[str, set[str]] = {
    "dagmix": {"mixing"},  # the package's __init__: the public API, re-exported from mixing
    "mixing": set(),
    "envs": {"dagmix", "mixing"},
    "models": {"dagmix", "mixing"},  # models.py: rsl_rl models (the multi-teacher); algorithms read them by duck typing
    "algorithms": {"dagmix", "mixing", "envs"},
    "integrations": {"dagmix", "mixing", "envs", "models", "algorithms"},
    "benchmarks": {"dagmix", "mixing", "envs", "models", "algorithms", "integrations"},
    "cli": {"dagmix", "mixing", "envs", "models", "algorithms", "integrations", "benchmarks"},
}
"""The layers (``dagmix`` or its top-level folder) each layer's modules may import, besides their own."""


def modules(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """Return every module of the package at ``root`` by dotted name: the .py files of its packages, tests aside."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] == "tests" or not all((root / p / "__init__.py").is_file() for p in rel.parents):
            continue  # the tests, or not in a package (scripts/)
        parts = ["dagmix", *rel.with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Return the import statements of ``tree`` that can run, lazy ones included (not those under TYPE_CHECKING)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        type_only = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in node.orelse if type_only else ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_edges(root: pathlib.Path) -> list[tuple[str, str, str]]:
    """Return (importer, imported module, "path:line") for every import of a module of the package by another."""
    mods = modules(root)
    edges = []
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importing module's package upwards
                    base = ".".join([*package[: len(package) - node.level + 1], *base.split(".")]).strip(".")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                targets = [a.name for a in node.names]
            for target in dict.fromkeys(targets):
                if target in mods and target != name:
                    edges.append((name, target, f"{path.relative_to(root)}:{node.lineno}"))
    return edges


def cycles(edges: list[tuple[str, str, str]]) -> list[set[str]]:
    """Return the strongly connected groups of two or more modules (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for a, b, _ in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = {stack.pop()}
            while v not in group:
                group.add(stack.pop())
            if len(group) > 1:
                out.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer(module: str) -> str:
    """Return the layer of a dotted module name: ``dagmix`` for the package's __init__, else its top folder."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


EDGES = import_edges(ROOT)


def test_the_walk_sees_lazy_imports_and_skips_type_checking_ones(tmp_path):
    pkg = tmp_path / "dagmix"
    for folder, code in {
        "mixing": "def f():\n    from dagmix.cli import main\n",
        "cli": "import typing\nif typing.TYPE_CHECKING:\n    from dagmix.envs import x\nimport dagmix.mixing\n",
        "envs": "",
    }.items():
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text(code)
    (pkg / "__init__.py").write_text("")
    edges = import_edges(pkg)
    assert edges == [
        ("dagmix.cli", "dagmix.mixing", "cli/__init__.py:4"),
        ("dagmix.mixing", "dagmix.cli", "mixing/__init__.py:2"),
    ]
    assert cycles(edges) == [{"dagmix.mixing", "dagmix.cli"}]


def test_every_module_is_in_a_layer():
    unknown = sorted(m for m in modules(ROOT) if layer(m) not in ALLOWED)
    assert not unknown, f"modules outside the layers of DESIGN.md (add the folder to ALLOWED): {unknown}"


def test_no_import_goes_up_the_layers():
    """mixing <- envs <- algorithms <- integrations <- benchmarks <- cli; nothing imports benchmarks but cli."""
    bad = [
        f"{where}: {a} imports {b}; {layer(a)} may import only {', '.join(sorted(ALLOWED[layer(a)])) or 'torch'}"
        for a, b, where in EDGES
        if layer(a) in ALLOWED and layer(b) != layer(a) and layer(b) not in ALLOWED[layer(a)]
    ]
    assert not bad, "imports that go up the layers:\n" + "\n".join(bad)


def test_no_import_cycles():
    new = cycles(EDGES)
    lines = [
        f"{where}: {a} imports {b}" for group in new for a, b, where in EDGES if a in group and b in group
    ]  # the arrows that hold each cycle together
    assert not new, "import cycles (a lazy import inside a function is still an arrow):\n" + "\n".join(lines)


def private_reaches(root: pathlib.Path) -> list[str]:
    """Return "path:line: ..." for each import of another module's private name, or of a private module from outside
    its package, and for each ``alg: Any`` parameter (a helper reaching into an algorithm it does not type)."""
    mods = modules(root)
    out = []
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.arg) and node.arg == "alg" and node.annotation is not None:
                if ast.unparse(node.annotation).strip("'\"") == "Any":
                    out.append(f"{where}: parameter alg: Any")
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("dagmix", ""):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package[: len(package) - node.level + 1], *base.split(".")]).strip(".")
                for a in node.names:
                    target = f"{base}.{a.name}"
                    if a.name.startswith("_") and not a.name.startswith("__") and target not in mods and base != name:
                        out.append(f"{where}: {name} imports the private name {a.name} of {base}")
                    mod = target if target in mods else base
                    private = [p for p in mod.split(".")[1:] if p.startswith("_") and not p.startswith("__")]
                    if private and not name.startswith(mod.rsplit(".", 1)[0] + "."):
                        out.append(f"{where}: {name} imports the private module {mod} from outside its package")
    return out


def test_no_module_reaches_into_another_modules_private_names():
    bad = private_reaches(ROOT)
    assert not bad, "private names reached from another module:\n" + "\n".join(bad)


def test_the_private_name_check_finds_each_kind(tmp_path):
    pkg = tmp_path / "dagmix"
    (pkg / "algorithms").mkdir(parents=True)
    (pkg / "cli").mkdir()
    for rel, code in {
        "__init__.py": "",
        "algorithms/__init__.py": "",
        "algorithms/_compat.py": "",
        "algorithms/core.py": "from dagmix.algorithms import _compat\n_x = 1\n",
        "cli/__init__.py": "",
        "cli/run.py": (
            "from typing import Any\nfrom dagmix.algorithms.core import _x\nfrom dagmix.algorithms import _compat\n"
            "def f(alg: Any): pass\n"
        ),
    }.items():
        (pkg / rel).write_text(code)
    assert private_reaches(pkg) == [
        "cli/run.py:2: dagmix.cli.run imports the private name _x of dagmix.algorithms.core",
        "cli/run.py:3: dagmix.cli.run imports the private module dagmix.algorithms._compat from outside its package",
        "cli/run.py:4: parameter alg: Any",
    ]
