"""The examples in docstrings run: every module of engine, gateway and replay with a ``>>>``.

``gateway.client``'s example is a sketch of a session against a running server (top-level
``await``), not a doctest, so it is left out by name.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "gateway", "replay")
NOT_DOCTESTS = {"gateway.client"}


def _modules_with_examples() -> list[str]:
    names = []
    for package in PACKAGES:
        for module in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            path = ROOT / (module.name.replace(".", "/") + ".py")
            if module.name in NOT_DOCTESTS or not path.exists():
                continue
            if ">>> " in path.read_text(encoding="utf-8"):
                names.append(module.name)
    return sorted(names)


MODULES = _modules_with_examples()


def test_the_engine_examples_are_collected() -> None:
    assert "engine.core.compiled.engine" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
