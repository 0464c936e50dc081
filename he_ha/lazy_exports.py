"""A package's public names, each loaded from its module on first use (PEP 562).

A package names its API in its ``__init__`` without importing all of it: ``from he_ha.lease
import LeaseClient`` loads he_ha.lease.client and what it needs, nothing else. So a lean process
that runs one module of a package (the lease keeper, the lease worker, ``hosted-engine
--vm-status``) pays only for that module, never for the package's heavy parts (pydantic,
structlog, asyncio). The package also lists the names in ``__all__`` and imports them under
``TYPE_CHECKING``, for the type checker: ``lazy_exports`` refuses a map that differs from
``__all__``, and tests/unit/test_package_exports.py checks the ``TYPE_CHECKING`` imports.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(package: str, modules: Mapping[str, Iterable[str]]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``, which exports each name listed under a module
    (``{"client": ("LeaseClient",)}``: he_ha.lease.client.LeaseClient); the names must be
    the package's ``__all__``, defined before."""
    where = {name: module for module, names in modules.items() for name in names}
    namespace = sys.modules[package].__dict__
    if sorted(where) != sorted(namespace["__all__"]):
        raise ImportError(f"{package}: __all__ and the lazily loaded names differ: {sorted(where)}")

    def load(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value  # the next lookup finds it without calling this again
        return value

    return load
