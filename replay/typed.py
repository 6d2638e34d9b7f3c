"""Typed views of log records for reports, tolerant of records the codec cannot decode.

Theory of operation
-------------------
Reports show commands and events in the typed view of ``engine.core.schema``.  A log under audit
may hold a command the codec does not know (a forged or damaged record whose checksums were
recomputed, or a newer writer's command kind): it must still be shown, not crash the report,
so it becomes a :class:`RawCommand` carrying every field of the record as it is.
"""

from __future__ import annotations

import msgspec
import numpy as np

from engine.core import schema as s
from engine.core.records import COMMAND_DTYPE, Codec


class RawCommand(msgspec.Struct, frozen=True, tag=0, tag_field="type"):
    """A command record the codec cannot decode, field by field (``COMMAND_DTYPE`` names).

    Its tag is 0, which no command kind uses, so results holding it decode like the others.
    """

    fields: dict[str, int]
    error: str


def decode_command(codec: Codec, record: tuple) -> s.Command | RawCommand:
    """One command record (a ``tolist()`` tuple) in the typed view, or as a :class:`RawCommand`."""
    try:
        return codec.decode_command(record)
    except (ValueError, KeyError, TypeError) as exc:
        names = COMMAND_DTYPE.names or ()
        return RawCommand(dict(zip(names, record, strict=True)), str(exc))


def decode_commands(codec: Codec, records: np.ndarray) -> list[s.Command | RawCommand]:
    """Command records in the typed view (see :func:`decode_command`)."""
    return [decode_command(codec, record) for record in records.tolist()]


def type_name(item: object) -> str:
    """The schema name of a typed command or event (``"TradeExecuted"``)."""
    return type(item).__name__
