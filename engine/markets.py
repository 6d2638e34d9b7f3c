"""Market definitions and allocation data read from files: the shipped defaults and the user's.

The pure state machine (``engine.core``) decodes definitions from bytes; reading them from a
path or from the package's own data (``engine/data``) happens here, at the edge.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import msgspec

from engine.core.allocation import Benchmarks
from engine.core.market import MarketDefinition, loads


def load(path: str | Path) -> MarketDefinition:
    """Load and validate a market definition file."""
    return loads(Path(path).read_bytes())


def _shipped(name: str) -> bytes:
    return importlib.resources.files("engine").joinpath(f"data/{name}").read_bytes()


def national_market() -> MarketDefinition:
    """The shipped default: China's national ETS, vintages CEA-2019-20 … CEA-2025 and CCER."""
    return loads(_shipped("national.toml"))


def benchmarks_2024() -> Benchmarks:
    """The published 2024 benchmarks, shipped as data (``engine/data/benchmarks_2024.toml``)."""
    return msgspec.toml.decode(_shipped("benchmarks_2024.toml"), type=Benchmarks)
