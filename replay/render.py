"""Text for people: prices in CNY, times in the exchange's time zone, aligned tables.

Theory of operation
-------------------
Everything the engine records is an integer: prices in ticks (fen), money in fen, times in
nanoseconds since the Unix epoch.  This module is the only place they become text, and it uses
integer arithmetic only (``divmod``), so a price shows exactly as recorded.  Times are shown,
and read when given without an offset, in China Standard Time (UTC+08:00, no daylight saving),
the time zone of the exchange.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

CST = dt.timezone(dt.timedelta(hours=8), "CST")
"""China Standard Time: the exchange's time zone."""
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NS = 1_000_000_000
_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)


def cny(fen: int) -> str:
    """Integer fen as CNY with two decimals (``6205 -> "62.05"``)."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{yuan:,}.{cents:02d}"


def timestamp(ns: int) -> str:
    """Nanoseconds since the epoch as ISO 8601 in China Standard Time, to the nanosecond."""
    seconds, fraction = divmod(ns, _NS)
    moment = dt.datetime.fromtimestamp(seconds, CST)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}+08:00"


def trading_date(date: int) -> str:
    """``20250102 -> "2025-01-02"`` (0: never)."""
    if date <= 0:
        return "-"
    return f"{date // 10000:04d}-{date // 100 % 100:02d}-{date % 100:02d}"


def parse_time(text: str, end: bool = False) -> int:
    """A point in time as nanoseconds since the epoch.

    Parameters
    ----------
    text : str
        Integer nanoseconds since the epoch, or ISO 8601: ``2025-01-02``,
        ``2025-01-02T09:30``, ``2025-01-02 09:30:00.123456789+08:00`` (without an offset:
        China Standard Time).
    end : bool
        Return the exclusive end of the period ``text`` names: the next midnight for a date,
        one nanosecond later for a moment.

    Raises
    ------
    ValueError
        Not a time in one of these forms.
    """
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text) + (1 if end else 0)
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"not a time: {text!r} (use 2025-01-02T09:30:00 or nanoseconds)")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    zone = CST if offset is None else _zone(offset)
    moment = dt.datetime(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        tzinfo=zone,
    )
    delta = moment - _EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * _NS + int((fraction or "").ljust(9, "0"))
    if end:
        ns += 86_400 * _NS if hour is None else 1
    return ns


def _zone(offset: str) -> dt.timezone:
    if offset == "Z":
        return dt.UTC
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:])
    return dt.timezone(sign * dt.timedelta(minutes=minutes))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows under headers in aligned columns; numbers (and CNY amounts) right-aligned."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    numeric = [bool(rows) and all(_is_number(row[i]) for row in rows) for i in range(len(headers))]
    lines = [_line(headers, widths, numeric)]
    lines.append("  ".join("-" * width for width in widths))
    lines.extend(_line(row, widths, numeric) for row in cells)
    return "\n".join(line.rstrip() for line in lines)


def _line(values: Sequence[str], widths: list[int], numeric: list[bool]) -> str:
    return "  ".join(
        value.rjust(width) if right else value.ljust(width)
        for value, width, right in zip(values, widths, numeric, strict=True)
    )


def _is_number(value: object) -> bool:
    if isinstance(value, int):
        return True
    return isinstance(value, str) and re.fullmatch(r"-?[\d,]+(\.\d+)?|-", value) is not None
