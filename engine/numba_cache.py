"""Keeping Numba's on-disk cache honest across modules.

Numba caches a compiled function's machine code keyed on the file that defines it (its path
and modification time), but a compiled function also carries, frozen inside it, the constants
and the code of every other compiled module it calls: edit ``layout.py`` or ``book.py`` and
the cached machine code of ``matching.py`` would silently keep the old values.  So every
compiled module carries a ``DEPENDENCIES_DIGEST``: a blake2b-64 of the files it compiles in
(:data:`DIGESTED`).  ``tests/test_architecture.py`` fails until the digest is current, and
updating it (``python -m engine.numba_cache``) changes the module's own file, which
invalidates its cache.

This tooling reads source files, so it lives outside the pure state machine it describes.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

CORE = Path(__file__).resolve().parent / "core"

_LAYOUT = ("compiled/layout.py", "schema.py", "limits.py", "records.py")
"""``layout.py`` and the modules it takes its codes and limits from; every kernel compiles them in."""

DIGESTED: dict[str, tuple[str, ...]] = {
    "compiled/ledger.py": _LAYOUT,
    "compiled/modes.py": (*_LAYOUT, "compiled/ledger.py"),
    "compiled/book.py": _LAYOUT,
    "compiled/matching.py": (
        *_LAYOUT,
        "compiled/ledger.py",
        "compiled/modes.py",
        "compiled/book.py",
    ),
    "compiled/sessions.py": (
        *_LAYOUT,
        "compiled/ledger.py",
        "compiled/modes.py",
        "compiled/matching.py",
    ),
    "compiled/dispatch.py": (
        *_LAYOUT,
        "compiled/ledger.py",
        "compiled/modes.py",
        "compiled/matching.py",
        "compiled/sessions.py",
    ),
    "compiled/state_hash.py": (
        *_LAYOUT,
        "compiled/ledger.py",
        "compiled/modes.py",
        "compiled/book.py",
    ),
}
"""Per compiled module of ``engine/core`` (in refresh order: a module's digest covers the
ones before it), the files whose constants and code it compiles in."""


def dependencies_digest(module: str) -> str:
    """The current digest of the files whose code and constants ``module`` compiles in."""
    sources = b"".join((CORE / name).read_bytes() for name in DIGESTED[module])
    return hashlib.blake2b(sources, digest_size=8).hexdigest()


def recorded_digest(module: str) -> str | None:
    """The ``DEPENDENCIES_DIGEST`` written in ``module``, or None if it has none."""
    text = (CORE / module).read_text(encoding="utf-8")
    found = re.search(r'^DEPENDENCIES_DIGEST = "([0-9a-f]*)"', text, flags=re.MULTILINE)
    return found.group(1) if found else None


def compiled_modules() -> set[str]:
    """Every module of ``engine/core`` that defines compiled functions (``@njit`` or
    ``compiled.layout``'s decorators)."""
    decorated = re.compile(
        r"^@(njit|kernel|inlined|allocating|inheriting|entry_kernel|entry_allocating)\b",
        re.MULTILINE,
    )
    return {
        path.relative_to(CORE).as_posix()
        for path in CORE.rglob("*.py")
        if decorated.search(path.read_text(encoding="utf-8"))
    }


def refresh_digests() -> None:
    """Rewrite the ``DEPENDENCIES_DIGEST`` of every compiled module, in dependency order."""
    for module in DIGESTED:
        path = CORE / module
        text = path.read_text(encoding="utf-8")
        fresh = f'DEPENDENCIES_DIGEST = "{dependencies_digest(module)}"'
        pattern = r'^DEPENDENCIES_DIGEST = "[0-9a-f]*"'
        path.write_text(re.sub(pattern, fresh, text, count=1, flags=re.MULTILINE), encoding="utf-8")


if __name__ == "__main__":  # refresh the digests after editing a dependency
    refresh_digests()
