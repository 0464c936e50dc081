"""The packages that export their names lazily (he_ha/lazy_exports.py): what the type checker
sees (the ``TYPE_CHECKING`` imports) is what ``__all__`` names and what loads at run time, and
importing a package loads none of its modules (the keeper and the lease worker run one module
of he_ha.lease and must not pay for the others)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["he_ha.lease", "he_ha.provision", "he_ha.whiteboard"]


def type_checking_imports(package: str) -> dict[str, str]:
    tree = ast.parse((REPO / package.replace(".", "/") / "__init__.py").read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    return {
        alias.asname or alias.name: f"{node.module}"
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }


@pytest.mark.parametrize("package", PACKAGES)
def test_the_type_checker_sees_what_loads_at_run_time(package: str) -> None:
    module = importlib.import_module(package)
    imports = type_checking_imports(package)
    assert sorted(imports) == sorted(module.__all__)
    for name, source in imports.items():
        assert getattr(module, name) is getattr(importlib.import_module(source), name)


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_the_package_loads_none_of_its_modules(package: str) -> None:
    code = f"import sys, {package}; print(sorted(m for m in sys.modules if m.startswith('{package}.')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.strip() == "[]"


def test_an_unknown_name_is_an_attribute_error() -> None:
    lease = importlib.import_module("he_ha.lease")
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = lease.Nothing
