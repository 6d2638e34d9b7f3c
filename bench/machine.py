"""A description of the machine a benchmark ran on, printed beside every result."""

from __future__ import annotations

import os
import platform

import msgspec
import numba
import numpy as np


class Machine(msgspec.Struct):
    cpu: str
    cores: int
    python: str
    numba: str
    numpy: str
    system: str


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> Machine:
    return Machine(
        cpu=_cpu_model(),
        cores=os.cpu_count() or 1,
        python=platform.python_version(),
        numba=numba.__version__,
        numpy=np.__version__,
        system=f"{platform.system()} {platform.release()}",
    )


def line(machine: Machine) -> str:
    return (
        f"machine: {machine.cpu}, {machine.cores} cores; Python {machine.python}, "
        f"Numba {machine.numba}, NumPy {machine.numpy}; {machine.system}"
    )
