"""The import contract: layers import one way, and library code leaves printing and exiting to the CLI.

    cbir (CLI, server, workflows)  ->  training  ->  indexer  ->  index_store

Lower layers may also use the leaf modules ``cbir.errors``, ``cbir.config`` and ``cbir.__version__``.
Every import counts, also one inside a function: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["index_store", "indexer", "training", "cbir"]  # each may import the ones before it
LEAVES = {"cbir.errors", "cbir.config", "cbir"}  # "cbir" itself: only for __version__
PROJECT = {*LAYERS, "benchmarks", "tests"}
ENTRY_POINTS = {"cbir/cli.py", "cbir/cli_clean.py", "cbir/cli_common.py", "cbir/cli_output.py", "cbir/__main__.py"}


def _modules() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (ROOT / layer).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def _allowed(importer: str, module: str, names: list[str]) -> bool:
    top = module.split(".")[0]
    if top not in PROJECT:
        return True  # the standard library and third-party packages
    if top in ("benchmarks", "tests"):
        return False
    rank = LAYERS.index(importer)
    if LAYERS.index(top) <= rank:
        return True
    if module == "cbir":
        return set(names) <= {"__version__"}
    return module in LEAVES


def test_layers_import_one_way():
    offences = []
    for path in _modules():
        layer = path.relative_to(ROOT).parts[0]
        for line, module, names in _imports(path):
            if not _allowed(layer, module, names):
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert offences == [], "upward imports:\n" + "\n".join(offences)


@pytest.mark.parametrize("leaf", ["cbir/errors.py", "cbir/config.py", "cbir/__init__.py"])
def test_leaf_modules_import_nothing_of_the_project(leaf):
    modules = [module for _, module, _ in _imports(ROOT / leaf)]
    assert not [m for m in modules if m.split(".")[0] in PROJECT]


def test_library_code_does_not_print_exit_or_set_up_logging():
    offences = []
    for path in _modules():
        relative = path.relative_to(ROOT).as_posix()
        if relative in ENTRY_POINTS:
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
    """The checker itself: an index_store module importing the indexer must be caught."""
    assert not _allowed("index_store", "indexer.loader", ["decode"])
    assert not _allowed("indexer", "training.split", ["Split"])
    assert not _allowed("training", "cbir.progress", ["progress_bar"])
    assert not _allowed("indexer", "cbir", ["clean"])
    assert _allowed("indexer", "cbir.errors", ["ModelError"]) and _allowed("index_store", "cbir", ["__version__"])
    assert _allowed("cbir", "training.trainer", ["train"]) and _allowed("training", "indexer.loader", ["decode"])
