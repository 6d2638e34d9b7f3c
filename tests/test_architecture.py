"""Architecture rules that code review alone would let slip.

* Dependencies point one way: ``gateway -> engine``, ``replay -> engine``,
  ``bench -> everything``; ``engine`` imports nothing of ours outside ``engine``.
* The state machine never reads a clock, a random number, the environment or a socket: the
  modules that decide outcomes import none of the modules that could.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"engine", "gateway", "replay", "bench"}
ALLOWED = {"engine": {"engine"}, "gateway": {"engine", "gateway"}, "replay": {"engine", "replay"}}
PURE_MODULES = ["schema", "records", "kernel", "ledger", "modes", "compiled", "reference", "market",
                "limits"]
IMPURE = {"time", "random", "os", "socket", "asyncio", "datetime", "secrets", "uuid"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependencies_point_one_way(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules found in {package}"
    for path in files:
        ours = _imports(path) & OURS
        assert ours <= ALLOWED[package], f"{path.relative_to(ROOT)} imports {ours - ALLOWED[package]}"


@pytest.mark.parametrize("module", PURE_MODULES)
def test_state_machine_modules_do_no_io(module: str) -> None:
    path = ROOT / "engine" / f"{module}.py"
    forbidden = _imports(path) & IMPURE
    assert not forbidden, f"engine/{module}.py imports {forbidden}"


@pytest.mark.parametrize("module", ["kernel", "ledger", "modes"])
def test_kernel_cache_key_covers_its_dependencies(module: str) -> None:
    """Numba caches a compiled module's machine code keyed on that file alone: when a file it
    compiles in changes, the module must change too (``python -m engine.kernel`` updates the
    digests of kernel.py, ledger.py and modes.py)."""
    import importlib

    from engine import kernel

    compiled = importlib.import_module(f"engine.{module}")
    dependencies = ", ".join(kernel.DIGESTED[f"{module}.py"])
    assert compiled.DEPENDENCIES_DIGEST == kernel.dependencies_digest(f"{module}.py"), (
        f"a dependency of engine/{module}.py ({dependencies}) changed: "
        "run `python -m engine.kernel`"
    )


def test_every_compiled_module_is_digested() -> None:
    """A module with compiled functions that is not in ``kernel.DIGESTED`` would go stale."""
    from engine import kernel

    compiled = {path.name for path in (ROOT / "engine").glob("*.py")
                if "@njit" in path.read_text(encoding="utf-8")}  # fmt: skip
    assert compiled == set(kernel.DIGESTED), "add the module to kernel.DIGESTED"
