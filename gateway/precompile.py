"""A helper process that fills Numba's on-disk cache ahead of a first run's needs.

Theory of operation
-------------------
On an empty Numba cache, a program's first run compiles every kernel it calls, one after the
other, on one core: the engine's batch loop when the engine is built, then the gateway's
compiled report router and intake (on threads, while the gateway already serves), the
engine's GIL-releasing batch loop when the audit runs.  :class:`Precompiler` starts a second Python
process that compiles the later ones meanwhile, on the machine's other core, into the same
cache (it inherits the environment, so ``NUMBA_CACHE_DIR`` or Numba's default locations are
the same); when the program reaches them, Numba loads them from the cache instead of compiling.

The helper compiles without running anything, and in an order the program can wait for: the
router's and the intake's kernels and the state hash first, then, once told that the engine's
batch loop is in the cache (:meth:`Precompiler.engine_ready`: the GIL-releasing loop calls it,
and would otherwise compile it again), the GIL-releasing loop.  It is only ever an optimisation: the
program compiles whatever is not in the cache yet, as it would without it, and a helper that
fails, or is still at work when the program ends, changes nothing.  On a warm cache it only
loads what is already there.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numba

_ROOT = Path(__file__).resolve().parents[1]
"""The directory holding this package: the helper imports the same code as its parent."""

_HELPER = (
    "import sys; sys.path.insert(0, {root!r}); from gateway import precompile; precompile._helper()"
)


class Precompiler:
    """Run the helper process (nothing when Numba's JIT is disabled).

    Parameters
    ----------
    symbols : list of str
        The market's symbols (``MarketDefinition.symbols``), for the report router.
    """

    def __init__(self, symbols: list[str]) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        if numba.config.DISABLE_JIT or not sys.executable:  # type: ignore[attr-defined]
            return
        with contextlib.suppress(OSError):
            self._process = subprocess.Popen(
                [sys.executable, "-c", _HELPER.format(root=str(_ROOT)), json.dumps(symbols)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def engine_ready(self) -> None:
        """Tell the helper that the engine's batch loop is compiled, and so in the cache."""
        if self._process is not None and self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.write(b"ready\n")
                self._process.stdin.close()

    def close(self) -> None:
        """Stop the helper if it is still at work (what it has cached stays cached)."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        if process.poll() is None:
            process.terminate()
        process.wait()

    def __enter__(self) -> Precompiler:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _helper() -> None:
    """The helper process: compile (or load) the kernels, the engine's last, see the module."""
    import numpy as np

    from engine.core import schema as s
    from engine.core.compiled import book, dispatch, state_hash
    from engine.core.records import COMMAND_DTYPE, EVENT_FIELDS
    from gateway import fastpath, intake

    with contextlib.suppress(AttributeError, OSError):
        os.nice(5)  # the parent's own compiling comes first
    symbols = json.loads(sys.argv[1])
    fastpath.compile_kernels(["?", s.ALL_INSTRUMENTS, *symbols], wait=True)  # as GatewayCore
    intake.compile_scanner(wait=True)
    st = numba.typeof(np.zeros(1, dtype=np.int64))
    out = numba.typeof(np.zeros((1, EVENT_FIELDS), dtype=np.int64))
    cmds = numba.typeof(np.zeros(0, dtype=COMMAND_DTYPE))
    state_hash.hash_words.compile((st,))
    book.best_prices.compile((st, numba.int64, numba.int64, numba.int64, st))
    book.side_slots.compile((st, numba.int64, numba.int64, numba.int64, st))  # snapshots
    if sys.stdin.readline() == "ready\n":
        dispatch.process_batch_released.compile((st, cmds, numba.int64, out))
