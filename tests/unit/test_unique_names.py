"""One public name per concept (issue 15 item 2): no two public classes and no two modules of
he_ha and cli share a name, so a name found in a traceback, a log line or the docs leads to
one definition."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def public_classes() -> dict[str, list[str]]:
    found: defaultdict[str, list[str]] = defaultdict(list)
    for package in ("he_ha", "cli"):
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    found[node.name].append(str(path.relative_to(REPO)))
    return found


def test_no_two_public_classes_share_a_name() -> None:
    classes = public_classes()
    assert len(classes) > 100  # the scan found the tree
    assert {name: paths for name, paths in classes.items() if len(paths) > 1} == {}


def test_no_two_modules_share_a_name() -> None:
    modules: defaultdict[str, list[str]] = defaultdict(list)
    for package in ("he_ha", "cli"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path.name not in ("__init__.py", "__main__.py"):
                modules[path.name].append(str(path.relative_to(REPO)))
    assert len(modules) > 100
    assert {name: paths for name, paths in modules.items() if len(paths) > 1} == {}
