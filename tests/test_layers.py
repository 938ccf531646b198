"""The import contract: layers import one way, no module imports itself back through others, and library
code leaves printing and exiting to the CLI.

    cbir.cli, cbir.web (the faces)  ->  cbir.actions (one use case per job)  ->  the rest of cbir
        ->  training  ->  indexer  ->  index_store

Lower layers may also use the leaf modules ``cbir.errors``, ``cbir.config`` and ``cbir.__version__``.
Every import counts, also one inside a function. Inside a function, only the heavy third-party libraries
may be imported (so that every command starts quickly); the project's own modules are imported at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["index_store", "indexer", "training", "cbir"]  # each may import the ones before it
LEAVES = {"cbir.errors", "cbir.config", "cbir"}  # "cbir" itself: only for __version__
PROJECT = {*LAYERS, "benchmarks", "tests"}
FACES = ("cbir.cli", "cbir.web", "cbir.__main__")
ENTRY_POINTS = ("cbir/cli/", "cbir/__main__.py")
# Imported where used, so that a command that does not need them starts without them.
HEAVY = {"tensorflow", "keras", "faiss", "openvino", "nncf", "ray", "sklearn", "matplotlib", "h5py", "skimage",
         "scipy", "pillow_heif", "ai_edge_litert", "fcntl", "reverse_geocoder", "pycountry"}


def _modules() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> list[tuple[int, str, list[str], bool]]:
    """(line, module, names, inside a function) for every import in the file, at any depth."""
    found: list[tuple[int, str, list[str], bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((child.lineno, alias.name, [], inside) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.lineno, child.module, [alias.name for alias in child.names], inside))
            visit(child, inside)

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


def _own(module: str) -> str | None:
    """The project module an import names (the longest existing prefix), if any."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in MODULES:
            return ".".join(parts[:i])
    return None


def _within_cbir(importer: str, imported: str) -> bool:
    """Inside cbir: the faces on top, then the use cases, then the rest."""
    def rank(module: str) -> int:
        if module.startswith(FACES):
            return 2
        return 1 if module.startswith("cbir.actions") else 0

    if imported.startswith("cbir.web") and importer.startswith("cbir.cli") and importer != "cbir.cli.serve":
        return False  # the web's stack loads only for `cbir serve`
    if imported.startswith("cbir.cli") and not importer.startswith("cbir.cli") and importer != "cbir.__main__":
        return False
    if importer.startswith(FACES) and imported.startswith(FACES):
        return importer.split(".")[1] == imported.split(".")[1] or importer in ("cbir.cli.serve", "cbir.__main__")
    return rank(imported) <= rank(importer)


def _allowed(importer: str, module: str, names: list[str]) -> bool:
    top = module.split(".")[0]
    if top not in PROJECT:
        return True  # the standard library and third-party packages
    if top in ("benchmarks", "tests"):
        return False
    layer = importer.split(".")[0]
    if module == "cbir":
        return set(names) <= {"__version__"}
    if module in LEAVES:
        return True
    if LAYERS.index(top) < LAYERS.index(layer):
        return True
    if LAYERS.index(top) > LAYERS.index(layer):
        return False
    return layer != "cbir" or _within_cbir(importer, _own(module) or module)


def test_layers_import_one_way():
    offences = []
    for name, path in MODULES.items():
        for line, module, names, _ in _imports(path):
            if not _allowed(name, module, names):
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert offences == [], "imports against the layers:\n" + "\n".join(offences)


def _graph() -> dict[str, set[str]]:
    """Every module's project imports, counting those inside functions, and the CLI's lazily loaded commands."""
    from cbir.cli import COMMANDS

    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges = set()
        for _, module, names, _ in _imports(path):
            for target in (module, *(f"{module}.{n}" for n in names)):
                own = _own(target)
                if own and own != name:
                    edges.add(own)
        graph[name] = edges
    graph["cbir.cli"] |= {module for module, _, _ in COMMANDS.values()}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_back():
    assert _cycles(_graph()) == []


def test_the_cycle_check_sees_a_cycle_through_a_function_level_import():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_functions_import_only_heavy_libraries():
    offences = []
    for path in MODULES.values():
        for line, module, _, inside in _imports(path):
            if inside and module.split(".")[0] not in HEAVY:
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {module} inside a function")
    assert offences == [], "\n".join(offences)


def test_every_cli_command_is_listed_with_its_own_help_line():
    import importlib

    from cbir.cli import COMMANDS

    for name, (module, attribute, line) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        assert command.name == name and (command.help or "").strip().splitlines()[0] == line


@pytest.mark.parametrize("leaf", ["cbir/errors.py", "cbir/config.py", "cbir/__init__.py"])
def test_leaf_modules_import_nothing_of_the_project(leaf):
    modules = [module for _, module, _, _ in _imports(ROOT / leaf)]
    assert not [m for m in modules if m.split(".")[0] in PROJECT]


def test_library_code_does_not_print_exit_or_set_up_logging():
    offences = []
    for path in MODULES.values():
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(ENTRY_POINTS):
            continue
        for node in ast.walk(ast.parse(path.read_text(), relative)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else (
                f"{func.value.id}.{func.attr}" if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                else "")
            if name in ("print", "exit", "sys.exit", "logging.basicConfig") or name.endswith(".addHandler"):
                offences.append(f"{relative}:{node.lineno} calls {name}")
    assert offences == [], "\n".join(offences)


def test_the_contract_test_sees_an_upward_import():
    """The checker itself: imports against the layers must be caught."""
    assert not _allowed("index_store.catalog", "indexer.loader", ["decode"])
    assert not _allowed("indexer.pipeline", "training.split", ["Split"])
    assert not _allowed("training.trainer", "cbir.search", ["Hit"])
    assert not _allowed("indexer.loader", "cbir", ["clean"])
    assert not _allowed("cbir.actions.clean", "cbir.cli.common", ["echo_err"])
    assert not _allowed("cbir.moves.clean", "cbir.actions.indexing", ["index_into"])
    assert not _allowed("cbir.search", "cbir.web.server", ["Server"])
    assert not _allowed("cbir.cli.query", "cbir.web.server", ["Server"])
    assert _allowed("indexer.loader", "cbir.errors", ["ModelError"]) and _allowed("index_store.manifest", "cbir",
                                                                                   ["__version__"])
    assert _allowed("cbir.cli.clean", "cbir.actions.clean", ["clean"]) and _allowed("cbir.web.api", "cbir.search", [])
    assert _allowed("cbir.cli.serve", "cbir.web.server", ["Server"]) and _allowed("training.trainer",
                                                                                   "indexer.loader", ["decode"])
