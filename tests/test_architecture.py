"""Architecture rules that code review alone would let slip.

* Dependencies point one way: ``engine`` imports nothing of ours outside ``engine``;
  ``replay -> engine``; ``gateway -> engine, replay`` (the venue's operational package: the
  server, the ``cets`` command line and the demo, which audits its own log with ``replay``);
  ``bench -> everything``.
* The pure state machine is the whole of ``engine/core``: no module under it may touch a
  file, a clock, a socket, a thread, a process, the environment or a random source, whether
  by import or by a call of the built-in ``open``.  The durable shell (``engine/durable``)
  and the edges (``engine/markets.py``, ``engine/numba_cache.py``) do the I/O.
* Numba's cache stays honest: every compiled module carries a current digest of the modules
  it compiles in.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from engine import numba_cache

ROOT = Path(__file__).resolve().parent.parent
OURS = {"engine", "gateway", "replay", "bench"}
ALLOWED = {
    "engine": {"engine"},
    "replay": {"engine", "replay"},
    "gateway": {"engine", "replay", "gateway"},
}
PURE = ROOT / "engine" / "core"
IMPURE_MODULES = {
    # clocks and randomness
    "time",
    "datetime",
    "random",
    "secrets",
    "uuid",
    "zoneinfo",
    "numpy.random",
    # files, processes and the environment
    "os",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "mmap",
    "fcntl",
    "glob",
    "importlib",
    "subprocess",
    "multiprocessing",
    "sys",
    "platform",
    "resource",
    "signal",
    # sockets, event loops and threads
    "socket",
    "select",
    "selectors",
    "asyncio",
    "ssl",
    "http",
    "urllib",
    "threading",
    "concurrent",
    "queue",
}
IMPURE_ATTRIBUTES = {"random", "fromfile", "tofile", "load", "save", "memmap"}
"""``np.random``, ``np.fromfile`` … : numpy's own doors to files and randomness."""


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _top(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def _parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependencies_point_one_way(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules found in {package}"
    for path in files:
        ours = _top(_imports(_parse(path))) & OURS
        assert ours <= ALLOWED[package], (
            f"{path.relative_to(ROOT)} imports {ours - ALLOWED[package]}"
        )


def _impurities(tree: ast.AST) -> set[str]:
    found = set()
    for name in _imports(tree):
        parts = name.split(".")
        prefixes = {".".join(parts[: i + 1]) for i in range(len(parts))}
        found |= prefixes & IMPURE_MODULES
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in {"open", "input", "print", "exec", "eval", "__import__"}:
                found.add(f"{node.func.id}()")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in {"np", "numpy"} and node.attr in IMPURE_ATTRIBUTES:
                found.add(f"{node.value.id}.{node.attr}")
    return found


PURE_FILES = sorted(PURE.rglob("*.py"))


@pytest.mark.parametrize("path", PURE_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_pure_state_machine_does_no_io(path: Path) -> None:
    forbidden = _impurities(_parse(path))
    assert not forbidden, f"{path.relative_to(ROOT)} uses {sorted(forbidden)}"


def test_the_purity_check_can_fail() -> None:
    """The rule above would catch each kind of access it names."""
    for source in (
        "import os",
        "from time import monotonic",
        "import numpy.random",
        "x = open('f')",
        "x = np.random.default_rng()",
        "import threading",
        "from socket import socket",
        "import importlib.resources",
    ):
        assert _impurities(ast.parse(source)), source
    assert not _impurities(ast.parse("import numpy as np\nx = np.zeros(3)"))


def test_everything_outside_the_pure_part_is_the_shell() -> None:
    """``engine`` is the pure ``core`` plus a shell whose modules are named for their I/O."""
    shell = {p.relative_to(ROOT / "engine").as_posix() for p in (ROOT / "engine").rglob("*.py")}
    shell = {name for name in shell if not name.startswith("core/")}
    edges = {"__init__.py", "markets.py", "numba_cache.py"}
    strays = {name for name in shell if name not in edges and not name.startswith("durable/")}
    assert not strays, f"modules outside engine/core and engine/durable: {sorted(strays)}"


@pytest.mark.parametrize("module", sorted(numba_cache.DIGESTED))
def test_kernel_cache_key_covers_its_dependencies(module: str) -> None:
    """Numba caches a compiled module's machine code keyed on that file alone: when a file it
    compiles in changes, the module must change too (``python -m engine.numba_cache``
    updates every digest)."""
    dependencies = ", ".join(numba_cache.DIGESTED[module])
    assert numba_cache.recorded_digest(module) == numba_cache.dependencies_digest(module), (
        f"a dependency of engine/core/{module} ({dependencies}) changed: "
        "run `python -m engine.numba_cache`"
    )


def test_every_compiled_module_is_digested() -> None:
    """A module with compiled functions that is not in ``DIGESTED`` would go stale."""
    assert numba_cache.compiled_modules() == set(numba_cache.DIGESTED), (
        "add the module to engine.numba_cache.DIGESTED"
    )
