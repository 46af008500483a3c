"""The import structure of artfs: layers point down only, and artfs modules form no cycle.

Every ``import`` of every module under ``artfs/`` and ``daemon/artfsd/`` counts, lazy ones
inside functions and ``TYPE_CHECKING`` blocks included: a lazy import that reaches up is a
cycle in disguise (see docs/architecture.md, "Layers").
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"artfs": ROOT / "artfs", "artfsd": ROOT / "daemon" / "artfsd"}

# Bottom up. A module belongs to the first layer with a prefix naming it (a prefix is a module
# or a package); a module may import its own layer and those below it.
LAYERS: list[tuple[str, list[str]]] = [
    # Names, errors and clients of outside services that know nothing of the store.
    (
        "base",
        ["artfs.errors", "artfs.names", "artfs.procinfo", "artfs.mounts", "artfs.objectstore"],
    ),
    ("store", ["artfs.store"]),
    # views: records -> the JSON shapes the CLI prints and the UI serves
    ("lineage", ["artfs.lineage", "artfs.run_metrics", "artfs.run_ends", "artfs.views"]),
    ("remote", ["artfs.remote"]),
    ("composition", ["artfs.stores"]),
    ("fs", ["artfs.fs", "artfs.vfs", "artfs.usage"]),
    # The operations users name (put, get, ls, lineage, push, pull, clone), under CLI and SDK.
    ("porcelain", ["artfs.porcelain"]),
    ("sdk", ["artfs.sdk", "artfs.util", "artfs"]),  # artfs/__init__.py is the SDK's public face
    ("cli", ["artfs.cli", "artfs.demo", "artfs.ui"]),  # the web app shares the CLI's render
    ("daemon", ["artfsd"]),
]

# Known upward imports not fixed yet (importer, imported), each to be removed as it is fixed.
# Empty since the store's ports replaced its lazy imports of the remote (issue 15); an entry
# here is a debt, never a store -> remote or lineage -> remote edge (tested below regardless).
ALLOWED_UPWARD: set[tuple[str, str]] = set()

# Known import cycles (each a sorted list of modules), to be removed as they are broken. Empty
# since the last one went (issue 15): Artifact.logged_by/used_by return a PublicRun, the
# read-side run that lives beside Artifact in artfs.sdk.artifact (on artfs.sdk.run_data), and
# the live Run of artfs.sdk.run extends it, so nothing below artfs.sdk.run imports it.
ALLOWED_CYCLES: list[list[str]] = []

# Modules above the store that still read or write index tables themselves instead of through
# the store's API (catalog, runs, Store), to be removed as they are fixed: none left.
ALLOWED_TABLE_USERS: set[str] = set()


def modules() -> dict[str, Path]:
    """Every module of the two packages, by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The artfs modules ``name`` imports anywhere in its source. ``from P import x`` names
    module ``P.x`` when that is a module, else ``P`` itself."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]  # an attribute of a module: that module
            if target and target != name:
                yield target


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imported(name, path, known)) for name, path in found.items()}


def layer_of(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "artfs"):
            return rank
    for rank, (_, prefixes) in enumerate(LAYERS):
        if module in prefixes:
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def upward_edges() -> set[tuple[str, str]]:
    return {
        (importer, target)
        for importer, targets in graph().items()
        for target in targets
        if layer_of(target) > layer_of(importer)
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        order[node] = low[node] = len(order)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in order:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], order[target])
        if low[node] == order[node]:
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
        if node not in order:
            visit(node)
    return found


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer_of(name)


def test_no_module_imports_a_higher_layer() -> None:
    upward = upward_edges()
    new = sorted(upward - ALLOWED_UPWARD)
    assert not new, "imports reaching up a layer (see LAYERS): " + ", ".join(
        f"{a} -> {b}" for a, b in new
    )


def test_allow_list_holds_only_edges_that_exist() -> None:
    """A fixed violation leaves the allow-list, so it cannot come back unnoticed."""
    stale = sorted(ALLOWED_UPWARD - upward_edges())
    assert not stale, f"fixed, remove from ALLOWED_UPWARD: {stale}"


def test_the_store_and_lineage_never_import_the_remote() -> None:
    """Not even lazily, and with no allow-list: the store declares ports that the remote
    implements (artfs.store.ports), and artfs.stores wires them."""
    reaching = sorted(
        (importer, target)
        for importer, targets in graph().items()
        if importer.partition(".")[2].partition(".")[0] in ("store", "lineage")
        for target in targets
        if target.startswith("artfs.remote")
    )
    assert not reaching, f"the store or lineage imports the remote: {reaching}"


def table_users() -> set[str]:
    """The modules outside the store that import the index's table names."""
    found = set()
    for name, path in modules().items():
        if name == "artfs.store" or name.startswith("artfs.store."):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module == "artfs.store.index"
                and any(alias.name == "Table" for alias in node.names)
            ):
                found.add(name)
    return found


def test_upper_layers_use_the_store_api_not_its_tables() -> None:
    assert table_users() - ALLOWED_TABLE_USERS == set()
    stale = ALLOWED_TABLE_USERS - table_users()
    assert not stale, f"fixed, remove from ALLOWED_TABLE_USERS: {stale}"


def test_stores_are_opened_through_the_composition_root() -> None:
    """Above the store, only artfs.stores calls Store.open: the CLI, the SDK and the daemon
    get stores with their remote wired (artfs.stores.open_store)."""
    callers = set()
    for name, path in modules().items():
        if name in ("artfs.store", "artfs.stores") or name.startswith("artfs.store."):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "open"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "Store"
            ):
                callers.add(name)
    assert not callers, f"open stores with artfs.stores.open_store: {sorted(callers)}"


def test_no_import_cycles_between_artfs_modules() -> None:
    found = [c for c in cycles(graph()) if c not in ALLOWED_CYCLES]
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_cycle_allow_list_holds_only_cycles_that_exist() -> None:
    stale = [c for c in ALLOWED_CYCLES if c not in cycles(graph())]
    assert not stale, f"broken, remove from ALLOWED_CYCLES: {stale}"


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    """An import inside a function and one a level up are both found."""
    package = tmp_path / "artfs"
    (package / "store").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "store" / "__init__.py").write_text("")
    (package / "store" / "a.py").write_text("def f():\n    from artfs.remote import fetch\n")
    (package / "store" / "b.py").write_text("from . import a\n")
    known = {"artfs", "artfs.store", "artfs.store.a", "artfs.store.b", "artfs.remote.fetch"}
    assert set(imported("artfs.store.a", package / "store" / "a.py", known)) == {
        "artfs.remote.fetch"
    }
    assert set(imported("artfs.store.b", package / "store" / "b.py", known)) == {"artfs.store.a"}
    assert cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}) == [["x", "y", "z"]]
