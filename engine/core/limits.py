"""Every limit of the system, in one place, with the relationships between them asserted.

TigerBeetle's rule: put a limit on everything and write the limits down where they can be
read together.  Engine capacities are the *defaults* of a market definition's ``[capacity]``
table; a definition may lower or raise them within the hard ceilings below.  The gateway's
limits live here too, so that one file answers "how big can X get?".
"""

from __future__ import annotations

# --- engine: hard ceilings (a market definition may not exceed these) -----------------------
INSTRUMENTS_MAX = 64
"""Instruments (vintages and offset families) in one market definition."""

ACCOUNTS_MAX = 1 << 20
"""Accounts the engine can index (dense account numbers 0 … ACCOUNTS_MAX-1)."""

RESTING_ORDERS_MAX = 1 << 24
"""Resting orders across all books."""

PRICE_LADDER_MAX_TICKS = 1_000_000
"""Largest price the compiled book can index, in ticks (10,000.00 CNY/t at a 1-fen tick)."""

QTY_MAX_T = 1_000_000_000_000
"""No quantity anywhere may exceed 10^12 t (the whole world emits ~4x10^10 t a year)."""

PRICE_TIMES_QTY_MAX = PRICE_LADDER_MAX_TICKS * QTY_MAX_T
"""Largest money amount one trade can produce, in fen; must fit int64."""

# --- engine: defaults for a market definition's [capacity] table ----------------------------
DEFAULT_ACCOUNTS = 8_192
DEFAULT_RESTING_ORDERS = 1 << 20
DEFAULT_MAX_PRICE_TICKS = 100_000
"""Default price ladder: 1,000.00 CNY/t, ten times the highest price the market has seen."""

DEFAULT_REGISTRY_KEYS = 1 << 20
"""Idempotency keys of registry commands remembered (a year of the national registry is ~10^4)."""

DEFAULT_BLOCK_OFFERS = 1_024
"""Block offers open at once across all instruments (the national market prints a few dozen
block trades a day)."""

DEFAULT_AUCTIONS = 64
"""Auctions applied or bidding at once (the national market held 8 in 2025)."""

DEFAULT_AUCTION_BIDS = 8_192
"""Sealed bids held at once across all auctions."""

TRADING_MODE_TABLE_MAX = 1 << 16
"""Ceiling of each of the three tables above: the engine finds rows by a linear scan."""

PHASES_MAX = 8
"""Trading phases in one schedule (the compiled engine packs 4 bits of modes per phase)."""

HIT_QUOTE_LEVELS_MAX = 100

CASH_MAX_FEN = 10**16
"""No single cash amount may exceed 10^14 CNY."""

CASH_TOTAL_MAX_FEN = 10**18
"""All the cash in one exchange (10^16 CNY): balances and their sums always fit int64."""

OBLIGATION_MAX_T = 10**10
"""The largest obligation one entity can report (the world emits ~4x10^10 t a year); with the
ladder's top price and a 100x penalty multiple, any penalty fits int64."""

COMPLIANCE_YEARS = 16
"""Compliance years the registry holds, from the market definition's first year."""

# --- batches and events ---------------------------------------------------------------------
BATCH_COMMANDS_MAX = 1 << 16
"""Commands in one engine batch (and one log record)."""

EVENTS_RESERVE = 16
"""Events a command may emit beyond one per resting order, block offer and auction bid (plus
two per instrument: a close reports SessionClosed and SessionModeVolumes); the compiled engine
sizes its event buffer with it."""

# --- gateway --------------------------------------------------------------------------------
FRAME_BYTES_MAX = 64 * 1024
"""Largest frame a peer may send, checked from the length prefix before anything is read."""

MESSAGES_PER_SECOND_PER_SESSION = 50_000
SESSIONS_PER_USER_MAX = 8
OPEN_ORDERS_PER_ACCOUNT_MAX = 10_000
OUTBOUND_QUEUE_FRAMES_MAX = 100_000
IDLE_TIMEOUT_S = 30.0
HEARTBEAT_INTERVAL_S = 5.0
LOGON_TIMEOUT_S = 2.0
"""A connection must send its Logon within this time of connecting (a slot held by a socket
that never authenticates is freed this soon)."""
CONNECTIONS_MAX = 1_024
"""Logged-on sessions the gateway holds at once; a logon beyond is refused (SERVER_FULL)
after its credentials were checked.  Connections not yet logged on do not count here."""
PRE_LOGON_CONNECTIONS_MAX = 64
"""Connections not yet logged on (waiting for or verifying their Logon) the gateway accepts
at once; more are refused at once (TOO_MANY_CONNECTIONS).  With LOGON_TIMEOUT_S this bounds
what sockets without a password can hold, apart from the logged-on sessions' slots."""
LOGONS_IN_FLIGHT_MAX = 4
"""Secret verifications (deliberately slow hashes) running at once; more logons get BUSY."""
SUBSCRIPTIONS_PER_SESSION_MAX = 64
ACCOUNTS_PER_USER_MAX = 64
SYMBOL_CHARS_MAX = 32
CLIENT_ORDER_ID_CHARS_MAX = 36
"""Client order ids: 1 … 36 characters (a UUID in text form fits)."""
USER_NAME_CHARS_MAX = 32
SECRET_CHARS_MAX = 256
TEXT_CHARS_MAX = 256
OUTBOUND_FRAME_BYTES_MAX = 48 << 20
"""Largest frame the server sends (a full-depth snapshot of a full price ladder, 20 bytes a
level, both sides); clients size their reader to it."""
SHUTDOWN_DRAIN_S = 5.0
"""Graceful shutdown waits at most this long for clients to read what was sent to them."""

# --- relationships --------------------------------------------------------------------------
assert PRICE_TIMES_QTY_MAX < 2**63, "a trade's value must fit int64"
assert CASH_MAX_FEN * 100 < 2**63, "a hundred maximal deposits must still fit int64"
assert QTY_MAX_T * 12_400 < 2**63, "C2F6 kilograms times its largest GWP must fit int64"
assert OBLIGATION_MAX_T * PRICE_LADDER_MAX_TICKS * 100 < 2**63, "penalties must fit int64"
assert CASH_TOTAL_MAX_FEN < 2**63
assert DEFAULT_ACCOUNTS <= ACCOUNTS_MAX
assert DEFAULT_RESTING_ORDERS <= RESTING_ORDERS_MAX
assert DEFAULT_MAX_PRICE_TICKS <= PRICE_LADDER_MAX_TICKS
assert ACCOUNTS_MAX < 2**31 and RESTING_ORDERS_MAX < 2**31
assert OPEN_ORDERS_PER_ACCOUNT_MAX <= DEFAULT_RESTING_ORDERS
assert max(DEFAULT_BLOCK_OFFERS, DEFAULT_AUCTIONS, DEFAULT_AUCTION_BIDS) <= TRADING_MODE_TABLE_MAX
assert PHASES_MAX * 4 <= 62, "phase masks are packed 4 bits each into one int64 word"
assert HEARTBEAT_INTERVAL_S * 2 < IDLE_TIMEOUT_S, "a live peer must never look idle"
assert FRAME_BYTES_MAX >= 4096
assert LOGONS_IN_FLIGHT_MAX <= PRE_LOGON_CONNECTIONS_MAX, "every verified logon holds a slot"
assert LOGON_TIMEOUT_S < HEARTBEAT_INTERVAL_S, "a socket without a logon is dropped soonest"
