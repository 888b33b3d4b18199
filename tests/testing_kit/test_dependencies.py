"""The testing kit imports only what it declares: stent-core's dependencies and its ``testing`` extra."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import stent.testing

KIT = Path(stent.testing.__file__).parent
OPTIONAL_GUARDS = {"ImportError", "ModuleNotFoundError"}


def _declared() -> set[str]:
    """Distributions stent-core needs, or pulls in with the ``testing`` extra (normalised names)."""
    names = set()
    for requirement in importlib.metadata.requires("stent-core") or []:
        name, _, marker = requirement.partition(";")
        if not marker.strip() or re.search(r"extra\s*==\s*['\"]testing['\"]", marker):
            names.add(_normal(re.split(r"[<>=!~\[ ]", name.strip(), maxsplit=1)[0]))
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """(top-level module, whether the import is guarded by ``except ImportError``, line) for each import."""
    tree = ast.parse(path.read_text(), str(path))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in OPTIONAL_GUARDS for h in node.handlers
        ):
            guarded.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], id(node) in guarded, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], id(node) in guarded, node.lineno))
    return found


def test_every_module_the_kit_imports_is_declared_or_optional() -> None:
    """Every third-party import in stent.testing comes from a declared distribution (pytest through the
    ``testing`` extra), or sits in a ``try``/``except ImportError`` (pytest-asyncio, which is optional)."""
    declared = _declared()
    assert {"pytest", "attrs", "cattrs", "pluggy"} <= declared
    owners = importlib.metadata.packages_distributions()
    undeclared = []
    optional = set()
    files = sorted(KIT.rglob("*.py"))
    assert len(files) > 20
    for path in files:
        for module, is_guarded, line in _imports(path):
            if module in sys.stdlib_module_names or module in {"stent", "__future__"}:
                continue
            distributions = {_normal(d) for d in owners.get(module, [module])}
            if distributions & declared:
                continue
            if is_guarded:
                optional.add(module)
            else:
                undeclared.append(f"{path.relative_to(KIT)}:{line} imports {module} ({', '.join(distributions)})")
    assert not undeclared, "undeclared imports in stent.testing:\n" + "\n".join(undeclared)
    assert optional == {"pytest_asyncio"}
