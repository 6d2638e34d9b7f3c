"""The hot view: commands and events as fixed-width records, and conversion to the typed view.

Theory of operation
-------------------
The compiled kernel and the log never see a Python object.  A batch of commands is a numpy
structured array of :data:`COMMAND_DTYPE` (64 bytes a command, little-endian, the log's body
format); the kernel writes events into a preallocated array of :data:`EVENT_DTYPE` (16 int64
columns), whose meaning per event kind is given by the ``E_*`` column constants below.  The
``kind`` of a record equals the msgspec tag of its typed counterpart in ``engine.core.schema``.

Symbols become dense instrument indices (their position in the market definition) here, at
the boundary, once; -1 means "every instrument" for session and mass-cancel commands.
"""

from __future__ import annotations

import numpy as np

from engine.core import schema as s
from engine.core.market import MarketDefinition

COMMAND_DTYPE = np.dtype(
    [
        ("seq", "<i8"),
        ("ts_ns", "<i8"),
        ("order_id", "<i8"),
        ("price_ticks", "<i8"),
        ("qty_t", "<i8"),
        ("aux", "<i8"),  # trading date (session commands); see the mappings below
        ("account", "<i4"),
        ("instrument", "<i4"),  # -1: all instruments; -2: a symbol the market does not list
        ("kind", "u1"),
        ("side", "u1"),
        ("order_type", "u1"),
        ("tif", "u1"),
        ("stp", "u1"),
        ("flags", "u1"),
        ("year", "<u2"),  # compliance year (registry commands)
    ]
)
assert COMMAND_DTYPE.itemsize == 64

# Command kinds (= schema tags)
K_SUBMIT, K_CANCEL, K_MODIFY, K_MASS_CANCEL = 1, 2, 3, 4
K_OPEN_SESSION, K_CLOSE_SESSION, K_HALT, K_RESUME, K_SET_PHASE = 10, 11, 12, 13, 14
K_BLOCK_OFFER, K_BLOCK_ACCEPT, K_BLOCK_CANCEL = 40, 41, 42
K_AUCTION_APPLY, K_AUCTION_ANNOUNCE, K_AUCTION_BID, K_AUCTION_CLEAR, K_AUCTION_CANCEL = (
    43,
    44,
    45,
    46,
    47,
)

K_OPEN_ACCOUNT, K_DEPOSIT, K_WITHDRAW, K_ISSUE, K_CLAW_BACK, K_TRANSFER = 20, 21, 22, 23, 24, 25
K_FREEZE, K_UNFREEZE, K_FREEZE_ACCOUNT, K_UNFREEZE_ACCOUNT, K_CANCEL_ALLOWANCES = 26, 27, 28, 29, 30
K_REPORT, K_SURRENDER, K_CLOSE_YEAR = 31, 32, 33

# Registry commands reuse the record's fields (exchange-core's OrderCommand does the same):
#   order_id  the idempotency key           account   the account (the sender of a transfer)
#   qty_t     tonnes, or fen for cash      instrument the instrument index
#   aux       transfer: receiving account;  report: C2F6 kilograms
#   price_ticks  open: province code;  report: CF4 kilograms;  close year: reference price
#   side      open: account kind;  issue: true-up (0/1);  report: GWP version
#   order_type  open: sector        year      report, surrender, close year
#
# Trading-mode commands (docs/TRADING_MODES.md):
#   SubmitOrder      aux: quote_order_id (hit-quote orders)
#   SetTradingPhase  instrument (-1: all), aux: phase
#   block offers     order_id: offer id; submit: side, price, qty, aux counterparty (-1 open);
#                    accept: price, qty
#   ApplyAuction     order_id: auction id, account, instrument, qty
#   AnnounceAuction  order_id: auction id, side: floor rule, order_type: clearing rule,
#                    aux: window start (ns), price_ticks: window end (ns)
#   SubmitAuctionBid order_id: bid id, aux: auction id, account, price, qty
#   Clear/CancelAuction  order_id: auction id

INSTRUMENT_ALL = -1
INSTRUMENT_UNKNOWN = -2

# Event columns: every event record is 16 int64 values.
EVENT_FIELDS = 16
(
    E_KIND,
    E_SEQ,
    E_TS,
    E_INSTRUMENT,
    E_ORDER_ID,
    E_ACCOUNT,
    E_SIDE,
    E_PRICE,
    E_QTY,
    E_REASON,
    E_X0,
    E_X1,
    E_X2,
    E_X3,
    E_X4,
    E_X5,
) = range(EVENT_FIELDS)
EVENT_DTYPE = np.dtype(
    [
        (name, "<i8")
        for name in (
            "kind seq ts_ns instrument order_id account side price_ticks qty_t reason "
            "x0 x1 x2 x3 x4 x5"
        ).split()
    ]
)
assert EVENT_DTYPE.itemsize == EVENT_FIELDS * 8

# Event kinds (= schema tags) and the meaning of the generic columns x0..x5 per kind:
EV_ACCEPTED = 1  # x0 order_type, x1 tif, x2 stp
EV_REJECTED = 2  # reason
EV_TRADE = 3  # order_id/account/side: taker; x0 maker order id, x1 maker account,
#                x2 trade id, x3 taker leaves, x4 maker leaves
EV_CANCELLED = 4  # qty: the open quantity cancelled; reason: CancelReason
EV_MODIFIED = 5  # price/qty: new; x0 priority kept (0/1), x1 old price, x2 old qty
EV_CANCEL_REJECTED = 6
EV_MODIFY_REJECTED = 7
EV_SESSION_OPENED = 8  # price: reference; x0 trading date, x1 lower band, x2 upper band
EV_SESSION_CLOSED = 9  # price: close; qty: volume; x0 date, x1 open, x2 high, x3 low,
#                        x4 value in fen, x5 trade count
EV_HALTED = 10
EV_RESUMED = 11
EV_COMMAND_REJECTED = 12  # x0 the command's kind
EV_MASS_CANCELLED = 13  # x0 number of orders cancelled
# Registry events: order_id holds the key, account the account, qty the amount.
EV_ACCOUNT_OPENED = 20  # x0 kind, x1 sector, x2 province
EV_CASH_DEPOSITED, EV_CASH_WITHDRAWN = 21, 22  # qty amount (fen), x0 available after
EV_ISSUED = 23  # x0 true-up, x1 tradable after
EV_CLAWED_BACK = 24  # x1 tradable after
EV_TRANSFERRED = 25  # x0 receiving account
EV_FROZEN, EV_UNFROZEN, EV_ACCOUNT_FROZEN, EV_ACCOUNT_UNFROZEN, EV_CANCELLED_ALLOWANCES = (
    26,
    27,
    28,
    29,
    30,
)
EV_EMISSIONS = 31  # qty obligation, x0 year, x1 co2 t, x2 cf4 kg, x3 c2f6 kg, x4 gwp
EV_SURRENDERED = 32  # x0 year
EV_COMPLIANCE = 33  # qty obligation, price reference, x0 year, x1 surrendered, x2 offsets,
#                     x3 shortfall, x4 penalty fen
EV_YEAR_CLOSED = 34  # price reference, x0 year, x1 entities
EV_DUPLICATE = 35  # reason original reason, x0 original seq, x1 command kind
EV_REGISTRY_REJECTED = 36  # x0 command kind
# Trading-mode events (docs/TRADING_MODES.md):
EV_PHASE_CHANGED = 14  # x0 phase, x1 modes
EV_MODE_VOLUMES = 15  # x0 date, qty block volume, x1 block value, x2 block trades,
#                       x3 auction volume, x4 auction value, x5 auction trades
EV_COMPOSITE = 16  # instrument 0, price composite, x0 date, x1 vintages
EV_BLOCK_POSTED = 40  # order_id offer, account, side, price, qty, x0 counterparty
EV_BLOCK_REJECTED = 41  # order_id offer, account, side, price, qty, reason, x0 command kind
EV_BLOCK_TRADE = 42  # order_id offer, account accepting, side offer side, x0 offer account,
#                      x1 trade id
EV_BLOCK_CANCELLED = 43  # order_id offer, account, side, price, qty, reason (CancelReason)
EV_AUCTION_APPLIED = 44  # order_id auction, account seller, qty lot
EV_AUCTION_ANNOUNCED = 45  # order_id auction, account seller, qty lot, price floor, x0 cap,
#                            x1 floor rule, x2 clearing, x3 window start, x4 window end
EV_BID_ACCEPTED = 46  # order_id bid, account, price, qty, x0 auction
EV_AUCTION_REJECTED = 47  # order_id auction, account, price, qty, reason, x0 command kind,
#                           x1 bid id
EV_AUCTION_TRADE = 48  # order_id bid, account buyer, price, qty, x0 auction, x1 trade id,
#                        x2 seller, x3 bid unfilled
EV_BID_RELEASED = 49  # order_id bid, account, price, qty, x0 auction
EV_AUCTION_CLEARED = 50  # order_id auction, account seller, side clearing, price, qty sold,
#                          x0 unsold, x1 value, x2 fills, x3 bids
EV_AUCTION_CANCELLED = 51  # order_id auction, account seller, qty lot, x0 bids


_SIDE = {m.value: m for m in s.Side}
_OTYPE = {m.value: m for m in s.OrderType}
_TIF = {m.value: m for m in s.TimeInForce}
_CANCEL = {m.value: m for m in s.CancelReason}
_REJECT = {m.value: m for m in s.RejectReason}
_STP = {m.value: m for m in s.StpMode}
_KIND = {m.value: m for m in s.AccountKind}
_SECTOR = {m.value: m for m in s.Sector}
_GWP = {m.value: m for m in s.GwpVersion}
_FLOOR = {m.value: m for m in s.FloorRule}
_CLEARING = {m.value: m for m in s.ClearingRule}
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


def _i32(value: int) -> int:
    """An account number for an int32 column; out of range becomes -1 (UNKNOWN_ACCOUNT)."""
    return value if _I32_MIN <= value <= _I32_MAX else -1


def _u8(value: int) -> int:
    """A code for a uint8 column; out of range becomes 255, which no enum uses."""
    return value if 0 <= value <= 255 else 255


def _u16(value: int) -> int:
    return value if 0 <= value <= 65_535 else 0


class Codec:
    """Converts between the typed view and the record view for one market definition."""

    def __init__(self, market: MarketDefinition) -> None:
        self.symbols: list[str] = market.symbols
        self._index = {symbol: i for i, symbol in enumerate(self.symbols)}
        # position index + 2: -2 (unknown) -> "?", -1 (all) -> ""
        self._by_index = ["?", s.ALL_INSTRUMENTS, *self.symbols]

    # -- commands ----------------------------------------------------------------------------
    def instrument_index(self, symbol: str, allow_all: bool = False) -> int:
        if allow_all and symbol == s.ALL_INSTRUMENTS:
            return INSTRUMENT_ALL
        return self._index.get(symbol, INSTRUMENT_UNKNOWN)

    def symbol(self, index: int) -> str:
        if index == INSTRUMENT_ALL:
            return s.ALL_INSTRUMENTS
        if 0 <= index < len(self.symbols):
            return self.symbols[index]
        return "?"

    def command_tuple(self, c: s.Command) -> tuple:
        """One command as a tuple in :data:`COMMAND_DTYPE` field order."""
        t = type(c)
        if t is s.SubmitOrder:
            return (
                c.seq,
                c.ts_ns,
                c.order_id,
                c.price_ticks,
                c.qty_t,
                c.quote_order_id,
                _i32(c.account),
                self._index.get(c.instrument, INSTRUMENT_UNKNOWN),
                1,
                _u8(c.side),
                _u8(c.order_type),
                _u8(c.tif),
                _u8(c.stp),
                0,
                0,
            )
        if t is s.CancelOrder:
            return (c.seq, c.ts_ns, c.order_id, 0, 0, 0, _i32(c.account), 0, 2, 0, 0, 0, 0, 0, 0)
        if t is s.ModifyOrder:
            return (
                c.seq,
                c.ts_ns,
                c.order_id,
                c.price_ticks,
                c.qty_t,
                0,
                _i32(c.account),
                0,
                3,
                0,
                0,
                0,
                0,
                0,
                0,
            )
        if t is s.MassCancel:
            index = self.instrument_index(c.instrument, allow_all=True)
            return (c.seq, c.ts_ns, 0, 0, 0, 0, _i32(c.account), index, 4, 0, 0, 0, 0, 0, 0)
        if t is s.OpenSession or t is s.CloseSession:
            index = self.instrument_index(c.instrument, allow_all=True)
            kind = K_OPEN_SESSION if t is s.OpenSession else K_CLOSE_SESSION
            return (c.seq, c.ts_ns, 0, 0, 0, c.trading_date, 0, index, kind, 0, 0, 0, 0, 0, 0)
        if t is s.HaltInstrument or t is s.ResumeInstrument:
            kind = K_HALT if t is s.HaltInstrument else K_RESUME
            index = self.instrument_index(c.instrument)
            return (c.seq, c.ts_ns, 0, 0, 0, 0, 0, index, kind, 0, 0, 0, 0, 0, 0)
        if t in _REGISTRY_TAGS:
            return self._registry_tuple(c)
        if t in _MODE_TAGS:
            return self._mode_tuple(c)
        raise TypeError(f"not a command: {c!r}")

    def _mode_tuple(self, c) -> tuple:
        """Fields of a trading-mode command, mapped onto the record as documented above."""
        t = type(c)
        kind = _MODE_TAGS[t]
        if t is s.SetTradingPhase:
            index = self.instrument_index(c.instrument, allow_all=True)
            return (c.seq, c.ts_ns, 0, 0, 0, c.phase, 0, index, kind, 0, 0, 0, 0, 0, 0)
        if t is s.SubmitBlockOffer:
            index = self._index.get(c.instrument, INSTRUMENT_UNKNOWN)
            return (
                c.seq,
                c.ts_ns,
                c.offer_id,
                c.price_ticks,
                c.qty_t,
                c.counterparty,
                _i32(c.account),
                index,
                kind,
                _u8(c.side),
                0,
                0,
                0,
                0,
                0,
            )
        if t is s.AcceptBlockOffer:
            return (
                c.seq,
                c.ts_ns,
                c.offer_id,
                c.price_ticks,
                c.qty_t,
                0,
                _i32(c.account),
                0,
                kind,
                0,
                0,
                0,
                0,
                0,
                0,
            )
        if t is s.CancelBlockOffer:
            return (c.seq, c.ts_ns, c.offer_id, 0, 0, 0, _i32(c.account), 0, kind, 0, 0, 0, 0, 0, 0)
        if t is s.ApplyAuction:
            index = self._index.get(c.instrument, INSTRUMENT_UNKNOWN)
            return (
                c.seq,
                c.ts_ns,
                c.auction_id,
                0,
                c.qty_t,
                0,
                _i32(c.account),
                index,
                kind,
                0,
                0,
                0,
                0,
                0,
                0,
            )
        if t is s.AnnounceAuction:
            return (
                c.seq,
                c.ts_ns,
                c.auction_id,
                c.window_end_ns,
                0,
                c.window_start_ns,
                0,
                0,
                kind,
                _u8(c.floor_rule),
                _u8(c.clearing),
                0,
                0,
                0,
                0,
            )
        if t is s.SubmitAuctionBid:
            return (
                c.seq,
                c.ts_ns,
                c.bid_id,
                c.price_ticks,
                c.qty_t,
                c.auction_id,
                _i32(c.account),
                0,
                kind,
                0,
                0,
                0,
                0,
                0,
                0,
            )
        return (c.seq, c.ts_ns, c.auction_id, 0, 0, 0, 0, 0, kind, 0, 0, 0, 0, 0, 0)

    def _registry_tuple(self, c) -> tuple:
        """Fields of a registry command, mapped onto the record as documented above."""
        t = type(c)
        kind = _REGISTRY_TAGS[t]
        account = _i32(getattr(c, "account", 0))
        symbol = getattr(c, "instrument", None)
        index = INSTRUMENT_ALL if symbol is None else self._index.get(symbol, INSTRUMENT_UNKNOWN)
        qty = getattr(c, "qty_t", getattr(c, "amount_fen", 0))
        price = aux = side = otype = year = 0
        if t is s.OpenAccount:
            price, side, otype = c.province, _u8(c.kind), _u8(c.sector)
        elif t is s.IssueAllowances:
            side = 1 if c.true_up else 0
        elif t is s.TransferAllowances:
            aux = c.to_account
        elif t is s.ReportEmissions:
            qty, price, aux, side, year = c.co2_t, c.cf4_kg, c.c2f6_kg, _u8(c.gwp), _u16(c.year)
        elif t is s.SurrenderAllowances:
            year = _u16(c.year)
        elif t is s.CloseComplianceYear:
            price, year = c.reference_price_ticks, _u16(c.year)
        return (
            c.seq,
            c.ts_ns,
            c.key,
            price,
            qty,
            aux,
            account,
            index,
            kind,
            side,
            otype,
            0,
            0,
            0,
            year,
        )

    def encode_commands(self, commands: list) -> np.ndarray:
        """Typed commands -> a record array of :data:`COMMAND_DTYPE`."""
        return np.array([self.command_tuple(c) for c in commands], dtype=COMMAND_DTYPE)

    def decode_command(self, r: tuple) -> s.Command:
        """One record (as a tuple, ``array.tolist()`` element) -> its typed command."""
        seq, ts, oid, price, qty, aux, account, index, kind, side, otype, tif, stp = r[:13]
        if kind >= K_BLOCK_OFFER or kind == K_SET_PHASE:
            return self._decode_mode(r)
        if kind >= K_OPEN_ACCOUNT:
            return self._decode_registry(r)
        if kind == K_SUBMIT:
            return s.SubmitOrder(
                seq=seq,
                ts_ns=ts,
                order_id=oid,
                account=account,
                instrument=self.symbol(index),
                side=_SIDE.get(side, side),
                qty_t=qty,
                price_ticks=price,
                order_type=_OTYPE.get(otype, otype),
                tif=_TIF.get(tif, tif),
                stp=_STP.get(stp, stp),
                quote_order_id=aux,
            )
        if kind == K_CANCEL:
            return s.CancelOrder(seq=seq, ts_ns=ts, order_id=oid, account=account)
        if kind == K_MODIFY:
            return s.ModifyOrder(
                seq=seq, ts_ns=ts, order_id=oid, account=account, price_ticks=price, qty_t=qty
            )
        if kind == K_MASS_CANCEL:
            return s.MassCancel(seq=seq, ts_ns=ts, account=account, instrument=self.symbol(index))
        if kind in (K_OPEN_SESSION, K_CLOSE_SESSION):
            cls = s.OpenSession if kind == K_OPEN_SESSION else s.CloseSession
            return cls(seq=seq, ts_ns=ts, trading_date=aux, instrument=self.symbol(index))
        if kind in (K_HALT, K_RESUME):
            cls = s.HaltInstrument if kind == K_HALT else s.ResumeInstrument
            return cls(seq=seq, ts_ns=ts, instrument=self.symbol(index))
        raise ValueError(f"unknown command kind {kind}")

    def _decode_mode(self, r: tuple) -> s.Command:
        seq, ts, oid, price, qty, aux, account, index, kind, side, otype = r[:11]
        if kind == K_SET_PHASE:
            return s.SetTradingPhase(seq=seq, ts_ns=ts, phase=aux, instrument=self.symbol(index))
        if kind == K_BLOCK_OFFER:
            return s.SubmitBlockOffer(
                seq=seq,
                ts_ns=ts,
                offer_id=oid,
                account=account,
                instrument=self.symbol(index),
                side=_SIDE.get(side, side),
                qty_t=qty,
                price_ticks=price,
                counterparty=aux,
            )
        if kind == K_BLOCK_ACCEPT:
            return s.AcceptBlockOffer(
                seq=seq, ts_ns=ts, offer_id=oid, account=account, price_ticks=price, qty_t=qty
            )
        if kind == K_BLOCK_CANCEL:
            return s.CancelBlockOffer(seq=seq, ts_ns=ts, offer_id=oid, account=account)
        if kind == K_AUCTION_APPLY:
            return s.ApplyAuction(
                seq=seq,
                ts_ns=ts,
                auction_id=oid,
                account=account,
                instrument=self.symbol(index),
                qty_t=qty,
            )
        if kind == K_AUCTION_ANNOUNCE:
            return s.AnnounceAuction(
                seq=seq,
                ts_ns=ts,
                auction_id=oid,
                floor_rule=_FLOOR.get(side, side),
                clearing=_CLEARING.get(otype, otype),
                window_start_ns=aux,
                window_end_ns=price,
            )
        if kind == K_AUCTION_BID:
            return s.SubmitAuctionBid(
                seq=seq,
                ts_ns=ts,
                bid_id=oid,
                auction_id=aux,
                account=account,
                price_ticks=price,
                qty_t=qty,
            )
        if kind == K_AUCTION_CLEAR:
            return s.ClearAuction(seq=seq, ts_ns=ts, auction_id=oid)
        if kind == K_AUCTION_CANCEL:
            return s.CancelAuction(seq=seq, ts_ns=ts, auction_id=oid)
        raise ValueError(f"unknown command kind {kind}")

    def _decode_registry(self, r: tuple) -> s.Command:
        seq, ts, key, price, qty, aux, account, index, kind, side, otype = r[:11]
        year = r[14]
        common = {"seq": seq, "ts_ns": ts, "key": key}
        cls = _REGISTRY_CLASSES.get(kind)
        if cls is None:
            raise ValueError(f"unknown command kind {kind}")
        if cls is s.OpenAccount:
            return cls(
                **common,
                account=account,
                kind=_KIND.get(side, side),
                sector=_SECTOR.get(otype, otype),
                province=price,
            )
        if cls in (s.DepositCash, s.WithdrawCash):
            return cls(**common, account=account, amount_fen=qty)
        if cls in (s.FreezeAccount, s.UnfreezeAccount):
            return cls(**common, account=account)
        if cls is s.ReportEmissions:
            return cls(
                **common,
                account=account,
                year=year,
                co2_t=qty,
                cf4_kg=price,
                c2f6_kg=aux,
                gwp=_GWP.get(side, side),
            )
        if cls is s.CloseComplianceYear:
            return cls(**common, year=year, reference_price_ticks=price)
        symbol = self.symbol(index)
        if cls is s.IssueAllowances:
            return cls(**common, account=account, instrument=symbol, qty_t=qty, true_up=bool(side))
        if cls is s.TransferAllowances:
            return cls(**common, account=account, to_account=aux, instrument=symbol, qty_t=qty)
        if cls is s.SurrenderAllowances:
            return cls(**common, account=account, instrument=symbol, year=year, qty_t=qty)
        return cls(**common, account=account, instrument=symbol, qty_t=qty)

    def decode_commands(self, records: np.ndarray) -> list:
        return [self.decode_command(r) for r in records.tolist()]

    # -- events ------------------------------------------------------------------------------
    def event(self, r: list | tuple) -> s.Event:  # noqa: C901 - one branch per kind, flat
        """One event record (16 ints) -> its typed event."""
        kind, seq, ts, index, oid, account, side, price, qty, reason, x0, x1, x2, x3, x4, x5 = r
        sym = self._by_index[index + 2] if -2 <= index < len(self.symbols) else "?"
        if kind == EV_TRADE:
            return s.TradeExecuted(
                seq, ts, x2, sym, price, qty, _SIDE[side], oid, account, x0, x1, x3, x4
            )
        if kind == EV_ACCEPTED:
            return s.OrderAccepted(
                seq,
                ts,
                oid,
                account,
                sym,
                _SIDE[side],
                _OTYPE[x0],
                _TIF[x1],
                price,
                qty,
            )
        if kind == EV_CANCELLED:
            return s.OrderCancelled(
                seq, ts, oid, account, sym, _SIDE[side], price, qty, _CANCEL[reason]
            )
        if kind == EV_MODIFIED:
            return s.OrderModified(
                seq, ts, oid, account, sym, _SIDE[side], price, qty, bool(x0), x1, x2
            )
        if kind == EV_REJECTED:
            return s.OrderRejected(seq, ts, oid, account, sym, side, price, qty, _REJECT[reason])
        if kind == EV_CANCEL_REJECTED:
            return s.CancelRejected(seq, ts, oid, account, _REJECT[reason])
        if kind == EV_MODIFY_REJECTED:
            return s.ModifyRejected(seq, ts, oid, account, price, qty, _REJECT[reason])
        if kind == EV_SESSION_OPENED:
            return s.SessionOpened(seq, ts, sym, x0, price, x1, x2)
        if kind == EV_SESSION_CLOSED:
            return s.SessionClosed(seq, ts, sym, x0, x1, x2, x3, price, qty, x4, x5)
        if kind == EV_HALTED:
            return s.InstrumentHalted(seq, ts, sym)
        if kind == EV_RESUMED:
            return s.InstrumentResumed(seq, ts, sym)
        if kind == EV_COMMAND_REJECTED:
            return s.CommandRejected(seq, ts, x0, sym, _REJECT[reason])
        if kind == EV_MASS_CANCELLED:
            return s.MassCancelled(seq, ts, account, sym, x0)
        if kind >= EV_BLOCK_POSTED or EV_PHASE_CHANGED <= kind <= EV_COMPOSITE:
            return self._mode_event(r, sym)
        return self._registry_event(r, sym)

    def _mode_event(self, r, sym: str) -> s.Event:  # noqa: C901 - one branch per kind
        kind, seq, ts, index, oid, account, side, price, qty, reason, x0, x1, x2, x3, x4, x5 = r
        if kind == EV_PHASE_CHANGED:
            return s.TradingPhaseChanged(seq, ts, sym, x0, x1)
        if kind == EV_MODE_VOLUMES:
            return s.SessionModeVolumes(seq, ts, sym, x0, qty, x1, x2, x3, x4, x5)
        if kind == EV_COMPOSITE:
            return s.CompositePrice(seq, ts, x0, price, x1)
        if kind == EV_BLOCK_POSTED:
            return s.BlockOfferPosted(seq, ts, oid, account, sym, _SIDE[side], price, qty, x0)
        if kind == EV_BLOCK_REJECTED:
            return s.BlockCommandRejected(
                seq, ts, x0, oid, account, sym, side, price, qty, _REJECT[reason]
            )
        if kind == EV_BLOCK_TRADE:
            return s.BlockTradeExecuted(seq, ts, x1, sym, price, qty, oid, _SIDE[side], x0, account)
        if kind == EV_BLOCK_CANCELLED:
            return s.BlockOfferCancelled(
                seq, ts, oid, account, sym, _SIDE[side], price, qty, _CANCEL[reason]
            )
        if kind == EV_AUCTION_APPLIED:
            return s.AuctionApplied(seq, ts, oid, account, sym, qty)
        if kind == EV_AUCTION_ANNOUNCED:
            return s.AuctionAnnounced(
                seq, ts, oid, account, sym, qty, price, x0, _FLOOR[x1], _CLEARING[x2], x3, x4
            )
        if kind == EV_BID_ACCEPTED:
            return s.AuctionBidAccepted(seq, ts, oid, x0, account, sym, price, qty)
        if kind == EV_AUCTION_REJECTED:
            return s.AuctionCommandRejected(
                seq, ts, x0, oid, x1, account, sym, price, qty, _REJECT[reason]
            )
        if kind == EV_AUCTION_TRADE:
            return s.AuctionTrade(seq, ts, x1, x0, sym, price, qty, oid, account, x2, x3)
        if kind == EV_BID_RELEASED:
            return s.AuctionBidReleased(seq, ts, oid, x0, account, sym, price, qty)
        if kind == EV_AUCTION_CLEARED:
            return s.AuctionCleared(
                seq, ts, oid, account, sym, _CLEARING[side], price, qty, x0, x1, x2, x3
            )
        if kind == EV_AUCTION_CANCELLED:
            return s.AuctionCancelled(seq, ts, oid, account, sym, qty, x0)
        raise ValueError(f"unknown event kind {kind}")

    def _registry_event(self, r, sym: str) -> s.Event:  # noqa: C901 - one branch per kind
        kind, seq, ts, index, key, account, side, price, qty, reason, x0, x1, x2, x3, x4, x5 = r
        if kind == EV_ACCOUNT_OPENED:
            return s.AccountOpened(
                seq, ts, key, account, _KIND.get(x0, x0), _SECTOR.get(x1, x1), x2
            )
        if kind == EV_CASH_DEPOSITED:
            return s.CashDeposited(seq, ts, key, account, qty, x0)
        if kind == EV_CASH_WITHDRAWN:
            return s.CashWithdrawn(seq, ts, key, account, qty, x0)
        if kind == EV_ISSUED:
            return s.AllowancesIssued(seq, ts, key, account, sym, qty, bool(x0), x1)
        if kind == EV_CLAWED_BACK:
            return s.AllowancesClawedBack(seq, ts, key, account, sym, qty, x1)
        if kind == EV_TRANSFERRED:
            return s.AllowancesTransferred(seq, ts, key, account, x0, sym, qty)
        if kind in _PLAIN_REGISTRY_EVENTS:
            return _PLAIN_REGISTRY_EVENTS[kind](seq, ts, key, account, sym, qty)
        if kind == EV_ACCOUNT_FROZEN:
            return s.AccountFrozen(seq, ts, key, account)
        if kind == EV_ACCOUNT_UNFROZEN:
            return s.AccountUnfrozen(seq, ts, key, account)
        if kind == EV_EMISSIONS:
            return s.EmissionsReported(seq, ts, key, account, x0, qty, x1, x2, x3, _GWP.get(x4, x4))
        if kind == EV_SURRENDERED:
            return s.AllowancesSurrendered(seq, ts, key, account, sym, x0, qty)
        if kind == EV_COMPLIANCE:
            return s.ComplianceReported(seq, ts, account, x0, qty, x1, x2, x3, x4, price)
        if kind == EV_YEAR_CLOSED:
            return s.ComplianceYearClosed(seq, ts, key, x0, x1, price)
        if kind == EV_DUPLICATE:
            return s.DuplicateCommand(seq, ts, key, x1, x0, _REJECT[reason])
        if kind == EV_REGISTRY_REJECTED:
            return s.RegistryRejected(seq, ts, key, x0, account, sym, _REJECT[reason])
        raise ValueError(f"unknown event kind {kind}")

    def decode_events(self, records: np.ndarray) -> list:
        """Event records (structured or (n, 16) int64) -> typed events."""
        rows = records.view(np.int64).reshape(-1, EVENT_FIELDS).tolist()
        return [self.event(r) for r in rows]

    def event_row(self, e: s.Event) -> list[int]:
        """A typed event -> its 16-int record (the inverse of :meth:`event`)."""
        row = [0] * EVENT_FIELDS
        row[E_KIND] = type(e).__struct_config__.tag
        row[E_SEQ], row[E_TS] = e.seq, e.ts_ns
        instrument = getattr(e, "instrument", None)
        if instrument is not None:
            row[E_INSTRUMENT] = self.instrument_index(instrument, allow_all=True)
        for column, name in _EVENT_COLUMNS[type(e)]:
            row[column] = int(getattr(e, name))
        return row

    def encode_events(self, events: list) -> np.ndarray:
        out = np.zeros(len(events), dtype=EVENT_DTYPE)
        if events:
            out.view(np.int64).reshape(-1, EVENT_FIELDS)[:] = [self.event_row(e) for e in events]
        return out


_REGISTRY_TAGS: dict[type, int] = {
    cls: cls.__struct_config__.tag for cls in s.REGISTRY_COMMAND_TYPES
}
_REGISTRY_CLASSES: dict[int, type] = {tag: cls for cls, tag in _REGISTRY_TAGS.items()}
_MODE_TAGS: dict[type, int] = {
    cls: cls.__struct_config__.tag
    for cls in (s.SetTradingPhase, *s.BLOCK_COMMAND_TYPES, *s.AUCTION_COMMAND_TYPES)
}
_PLAIN_REGISTRY_EVENTS: dict[int, type] = {
    EV_FROZEN: s.AllowancesFrozen,
    EV_UNFROZEN: s.AllowancesUnfrozen,
    EV_CANCELLED_ALLOWANCES: s.AllowancesCancelled,
}

_COMMON = [(E_ORDER_ID, "order_id"), (E_ACCOUNT, "account")]
_KEYED = [(E_ORDER_ID, "key"), (E_ACCOUNT, "account")]
_EVENT_COLUMNS: dict[type, list[tuple[int, str]]] = {
    s.OrderAccepted: _COMMON
    + [(E_SIDE, "side"), (E_PRICE, "price_ticks"), (E_QTY, "qty_t")]
    + [(E_X0, "order_type"), (E_X1, "tif")],
    s.OrderRejected: _COMMON
    + [(E_SIDE, "side"), (E_PRICE, "price_ticks"), (E_QTY, "qty_t"), (E_REASON, "reason")],
    s.TradeExecuted: [
        (E_ORDER_ID, "taker_order_id"),
        (E_ACCOUNT, "taker_account"),
        (E_SIDE, "aggressor_side"),
        (E_PRICE, "price_ticks"),
        (E_QTY, "qty_t"),
        (E_X0, "maker_order_id"),
        (E_X1, "maker_account"),
        (E_X2, "trade_id"),
        (E_X3, "taker_leaves_t"),
        (E_X4, "maker_leaves_t"),
    ],
    s.OrderCancelled: _COMMON
    + [(E_SIDE, "side"), (E_PRICE, "price_ticks"), (E_QTY, "qty_t"), (E_REASON, "reason")],
    s.OrderModified: _COMMON
    + [(E_SIDE, "side"), (E_PRICE, "price_ticks"), (E_QTY, "qty_t")]
    + [(E_X0, "priority_kept"), (E_X1, "old_price_ticks"), (E_X2, "old_qty_t")],
    s.CancelRejected: _COMMON + [(E_REASON, "reason")],
    s.ModifyRejected: _COMMON + [(E_PRICE, "price_ticks"), (E_QTY, "qty_t"), (E_REASON, "reason")],
    s.SessionOpened: [
        (E_X0, "trading_date"),
        (E_PRICE, "reference_price_ticks"),
        (E_X1, "lower_band_ticks"),
        (E_X2, "upper_band_ticks"),
    ],
    s.SessionClosed: [
        (E_X0, "trading_date"),
        (E_X1, "open_ticks"),
        (E_X2, "high_ticks"),
        (E_X3, "low_ticks"),
        (E_PRICE, "close_ticks"),
        (E_QTY, "volume_t"),
        (E_X4, "value_fen"),
        (E_X5, "trade_count"),
    ],
    s.InstrumentHalted: [],
    s.InstrumentResumed: [],
    s.CommandRejected: [(E_X0, "command"), (E_REASON, "reason")],
    s.MassCancelled: [(E_ACCOUNT, "account"), (E_X0, "cancelled_count")],
    s.AccountOpened: _KEYED + [(E_X0, "kind"), (E_X1, "sector"), (E_X2, "province")],
    s.CashDeposited: _KEYED + [(E_QTY, "amount_fen"), (E_X0, "available_fen")],
    s.CashWithdrawn: _KEYED + [(E_QTY, "amount_fen"), (E_X0, "available_fen")],
    s.AllowancesIssued: _KEYED + [(E_QTY, "qty_t"), (E_X0, "true_up"), (E_X1, "tradable_t")],
    s.AllowancesClawedBack: _KEYED + [(E_QTY, "qty_t"), (E_X1, "tradable_t")],
    s.AllowancesTransferred: _KEYED + [(E_QTY, "qty_t"), (E_X0, "to_account")],
    s.AllowancesFrozen: _KEYED + [(E_QTY, "qty_t")],
    s.AllowancesUnfrozen: _KEYED + [(E_QTY, "qty_t")],
    s.AccountFrozen: _KEYED,
    s.AccountUnfrozen: _KEYED,
    s.AllowancesCancelled: _KEYED + [(E_QTY, "qty_t")],
    s.EmissionsReported: _KEYED
    + [
        (E_QTY, "obligation_t"),
        (E_X0, "year"),
        (E_X1, "co2_t"),
        (E_X2, "cf4_kg"),
        (E_X3, "c2f6_kg"),
        (E_X4, "gwp"),
    ],
    s.AllowancesSurrendered: _KEYED + [(E_QTY, "qty_t"), (E_X0, "year")],
    s.ComplianceReported: [
        (E_ACCOUNT, "account"),
        (E_QTY, "obligation_t"),
        (E_PRICE, "reference_price_ticks"),
        (E_X0, "year"),
        (E_X1, "surrendered_t"),
        (E_X2, "offsets_t"),
        (E_X3, "shortfall_t"),
        (E_X4, "penalty_fen"),
    ],
    s.ComplianceYearClosed: [
        (E_ORDER_ID, "key"),
        (E_PRICE, "reference_price_ticks"),
        (E_X0, "year"),
        (E_X1, "entities"),
    ],
    s.DuplicateCommand: [
        (E_ORDER_ID, "key"),
        (E_REASON, "original_reason"),
        (E_X0, "original_seq"),
        (E_X1, "command"),
    ],
    s.RegistryRejected: _KEYED + [(E_REASON, "reason"), (E_X0, "command")],
    s.TradingPhaseChanged: [(E_X0, "phase"), (E_X1, "modes")],
    s.SessionModeVolumes: [
        (E_X0, "trading_date"),
        (E_QTY, "block_volume_t"),
        (E_X1, "block_value_fen"),
        (E_X2, "block_trades"),
        (E_X3, "auction_volume_t"),
        (E_X4, "auction_value_fen"),
        (E_X5, "auction_trades"),
    ],
    s.CompositePrice: [(E_X0, "trading_date"), (E_PRICE, "price_ticks"), (E_X1, "vintages")],
    s.BlockOfferPosted: [
        (E_ORDER_ID, "offer_id"),
        (E_ACCOUNT, "account"),
        (E_SIDE, "side"),
        (E_PRICE, "price_ticks"),
        (E_QTY, "qty_t"),
        (E_X0, "counterparty"),
    ],
    s.BlockCommandRejected: [
        (E_ORDER_ID, "offer_id"),
        (E_ACCOUNT, "account"),
        (E_SIDE, "side"),
        (E_PRICE, "price_ticks"),
        (E_QTY, "qty_t"),
        (E_REASON, "reason"),
        (E_X0, "command"),
    ],
    s.BlockTradeExecuted: [
        (E_ORDER_ID, "offer_id"),
        (E_ACCOUNT, "accepting_account"),
        (E_SIDE, "offer_side"),
        (E_PRICE, "price_ticks"),
        (E_QTY, "qty_t"),
        (E_X0, "offer_account"),
        (E_X1, "trade_id"),
    ],
    s.BlockOfferCancelled: [
        (E_ORDER_ID, "offer_id"),
        (E_ACCOUNT, "account"),
        (E_SIDE, "side"),
        (E_PRICE, "price_ticks"),
        (E_QTY, "qty_t"),
        (E_REASON, "reason"),
    ],
    s.AuctionApplied: [(E_ORDER_ID, "auction_id"), (E_ACCOUNT, "account"), (E_QTY, "qty_t")],
    s.AuctionAnnounced: [
        (E_ORDER_ID, "auction_id"),
        (E_ACCOUNT, "account"),
        (E_QTY, "qty_t"),
        (E_PRICE, "floor_price_ticks"),
        (E_X0, "cap_price_ticks"),
        (E_X1, "floor_rule"),
        (E_X2, "clearing"),
        (E_X3, "window_start_ns"),
        (E_X4, "window_end_ns"),
    ],
    s.AuctionBidAccepted: [
        (E_ORDER_ID, "bid_id"),
        (E_ACCOUNT, "account"),
        (E_PRICE, "price_ticks"),
        (E_QTY, "qty_t"),
        (E_X0, "auction_id"),
    ],
    s.AuctionCommandRejected: [
        (E_ORDER_ID, "auction_id"),
        (E_ACCOUNT, "account"),
        (E_PRICE, "price_ticks"),
        (E_QTY, "qty_t"),
        (E_REASON, "reason"),
        (E_X0, "command"),
        (E_X1, "bid_id"),
    ],
    s.AuctionTrade: [
        (E_ORDER_ID, "bid_id"),
        (E_ACCOUNT, "buyer_account"),
        (E_PRICE, "price_ticks"),
        (E_QTY, "qty_t"),
        (E_X0, "auction_id"),
        (E_X1, "trade_id"),
        (E_X2, "seller_account"),
        (E_X3, "bid_unfilled_t"),
    ],
    s.AuctionBidReleased: [
        (E_ORDER_ID, "bid_id"),
        (E_ACCOUNT, "account"),
        (E_PRICE, "price_ticks"),
        (E_QTY, "qty_t"),
        (E_X0, "auction_id"),
    ],
    s.AuctionCleared: [
        (E_ORDER_ID, "auction_id"),
        (E_ACCOUNT, "account"),
        (E_SIDE, "clearing"),
        (E_PRICE, "price_ticks"),
        (E_QTY, "sold_t"),
        (E_X0, "unsold_t"),
        (E_X1, "value_fen"),
        (E_X2, "fills"),
        (E_X3, "bids"),
    ],
    s.AuctionCancelled: [
        (E_ORDER_ID, "auction_id"),
        (E_ACCOUNT, "account"),
        (E_QTY, "qty_t"),
        (E_X0, "bids"),
    ],
}
