"""A description of the machine a benchmark ran on, printed beside every result.

The one place that asks the platform what it is: every benchmark (core, journal, carbon,
gateway) prints :func:`line` of :func:`describe` and stores the :class:`Machine` in its JSON.
Plain ``platform``/``os`` and ``/proc/cpuinfo``, so describing the machine needs no dependency.
The load average is part of the description: on a shared machine a figure measured at load 4
on 2 cores is half of what the code can do, and the reader should see that beside it.
"""

from __future__ import annotations

import os
import platform

import msgspec
import numba
import numpy as np


class Machine(msgspec.Struct):
    """The CPU model, logical cores, operating system, the versions the speed depends on, and
    the load when it was described."""

    cpu: str
    cores: int
    python: str
    numba: str
    numpy: str
    system: str
    load: tuple[float, ...] = ()
    """The 1, 5 and 15-minute load averages (``os.getloadavg``; empty where there are none)."""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> tuple[float, ...]:
    """The 1, 5 and 15-minute load averages, rounded to hundredths (empty where unknown)."""
    try:
        return tuple(round(value, 2) for value in os.getloadavg())
    except (AttributeError, OSError):
        return ()


def describe() -> Machine:
    """The machine this process runs on."""
    return Machine(
        cpu=_cpu_model(),
        cores=os.cpu_count() or 1,
        python=platform.python_version(),
        numba=numba.__version__,
        numpy=np.__version__,
        system=f"{platform.system()} {platform.release()}",
        load=load(),
    )


def line(machine: Machine) -> str:
    """``machine`` on one line, for a report's header or a chart's footer."""
    text = (
        f"machine: {machine.cpu}, {machine.cores} cores; Python {machine.python}, "
        f"Numba {machine.numba}, NumPy {machine.numpy}; {machine.system}"
    )
    if machine.load:
        text += f"; load {' '.join(f'{value:.2f}' for value in machine.load)} (1/5/15 min)"
    return text
