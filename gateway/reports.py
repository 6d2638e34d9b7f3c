"""What each session is told about each engine event: the one routing rule, live and replay.

Theory of operation
-------------------
A session's *scope* is fixed at logon: its user, the accounts it may trade for, whether it
is a drop copy.  :func:`messages_for` maps (scope, event, the event's position among its
command's events, the annotation of that command) to the messages the session receives:
execution reports from the point of view of the session's own accounts, event reports for the
user's own non-order commands and for events naming its accounts, or every event raw for a
drop copy.  The replay of a resumed session calls it for every logged event, so the replayed
stream is by construction the stream that was (or would have been) sent live; the server's
live fan-out (``GatewayCore._route``, and for order-event batches its compiled form in
``gateway.fastpath``) is an optimised form of the same rule, and tests hold them equal.

Events arrive here in the engine's record view - a row of 16 integers
(``engine.core.records.EVENT_DTYPE``) - because the gateway is the boundary where records become
wire messages: an order event goes from its row straight to an ``ExecutionReport``, without a
typed event in between.  Other events are decoded to their typed form (``engine.core.schema``),
which is what ``EventReport`` and ``DropCopy`` carry.

A trade is reported once per leg (0: the taker's order, 1: the maker's); a trader sees only
the legs of its own accounts and never the counterparty's account or order.

Confidentiality: nothing about another account's orders, directed block offers or unannounced
auctions reaches a trader, not even that they exist.  The engine's refusal of a command that
named one (``CancelRejected(NOT_ORDER_OWNER)``, ``ModifyRejected(SESSION_CLOSED)`` for another
firm's order, ``BlockCommandRejected(NOT_COUNTERPARTY)`` with the offer's instrument,
``AuctionCommandRejected(AUCTION_STATE)`` …) is reported exactly as the refusal of an id that
does not exist: reason ``UNKNOWN_ORDER`` / ``UNKNOWN_BLOCK_OFFER`` / ``UNKNOWN_AUCTION``,
instrument "?", no client order id.  Which commands those are, the gateway decided when it
sequenced them and wrote in their annotation (``Annotation.hidden``), so the rule is a function
of the log, live and in replay alike.  Drop copies (operators) see the engine's events as
they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec

from engine.core import records as r
from engine.core import schema as s
from gateway import protocol as p
from gateway.orders import NO_ANNOTATION, Annotation

_K, _SEQ, _TS, _INST, _OID, _ACC, _SIDE, _PRICE, _QTY, _REASON = range(10)
# the columns of the kinds reported here (module-level ints: this runs for every event)
_MAKER_ORDER_ID = r.TRADE_EXECUTED.maker_order_id
_MAKER_ACCOUNT = r.TRADE_EXECUTED.maker_account
_TRADE_ID = r.TRADE_EXECUTED.trade_id
_TAKER_LEAVES = r.TRADE_EXECUTED.taker_leaves_t
_MAKER_LEAVES = r.TRADE_EXECUTED.maker_leaves_t
_ORDER_TYPE, _TIF = r.ORDER_ACCEPTED.order_type, r.ORDER_ACCEPTED.tif
_PRIORITY_KEPT = r.ORDER_MODIFIED.priority_kept
_OLD_PRICE, _OLD_QTY = r.ORDER_MODIFIED.old_price_ticks, r.ORDER_MODIFIED.old_qty_t
assert (
    r.E_KIND,
    r.E_SEQ,
    r.E_TS,
    r.E_INSTRUMENT,
    r.E_ORDER_ID,
    r.E_ACCOUNT,
    r.E_SIDE,
    r.E_PRICE,
    r.E_QTY,
    r.E_REASON,
) == tuple(range(10))

ORDER_KINDS = frozenset(
    {
        r.EV_ACCEPTED,
        r.EV_REJECTED,
        r.EV_TRADE,
        r.EV_CANCELLED,
        r.EV_MODIFIED,
        r.EV_CANCEL_REJECTED,
        r.EV_MODIFY_REJECTED,
    }
)
"""Event kinds reported as ExecutionReports, one per leg."""

_SESSION_END = int(s.CancelReason.SESSION_END)
_ACCEPTED, _REJECTED, _PARTIAL, _FILLED, _CANCELLED, _EXPIRED, _MODIFIED = (
    int(p.ExecType.ACCEPTED),
    int(p.ExecType.REJECTED),
    int(p.ExecType.PARTIALLY_FILLED),
    int(p.ExecType.FILLED),
    int(p.ExecType.CANCELLED),
    int(p.ExecType.EXPIRED),
    int(p.ExecType.MODIFIED),
)
_CANCEL_REJECTED = int(p.ExecType.CANCEL_REJECTED)
_MODIFY_REJECTED = int(p.ExecType.MODIFY_REJECTED)
_TAKER, _MAKER = int(p.Liquidity.TAKER), int(p.Liquidity.MAKER)
_UNKNOWN_ORDER = int(s.RejectReason.UNKNOWN_ORDER)
_NOT_ORDER_OWNER = int(s.RejectReason.NOT_ORDER_OWNER)
_QUOTE_BEYOND = int(s.RejectReason.QUOTE_BEYOND_BEST_LEVELS)
_QUOTE_NOT_FOUND = int(s.RejectReason.QUOTE_NOT_FOUND)


class Scope(msgspec.Struct, frozen=True):
    """What one session may see."""

    user: str
    accounts: frozenset[int]
    drop_copy: bool = False


def legs(row: list[int]) -> tuple[tuple[int, int], ...]:
    """(leg, account) pairs of an order event row: taker and maker for a trade."""
    if row[_K] == r.EV_TRADE:
        return ((0, row[_ACC]), (1, row[_MAKER_ACCOUNT]))
    return ((0, row[_ACC]),)


EVENT_ACCOUNTS: dict[type, Callable] = {
    getattr(s, "AllowancesTransferred", None): lambda e: (e.account, e.to_account),
    s.BlockOfferPosted: lambda e: (
        (e.account,) if e.counterparty < 0 else (e.account, e.counterparty)
    ),
    s.BlockTradeExecuted: lambda e: (e.offer_account, e.accepting_account),
    s.AuctionTrade: lambda e: (e.buyer_account, e.seller_account),
}
"""Non-order event types that name accounts in fields other than ``account``."""
EVENT_ACCOUNTS.pop(None, None)


def accounts_of(event) -> tuple[int, ...]:
    """Accounts a typed non-order event concerns (their sessions get it as an EventReport)."""
    special = EVENT_ACCOUNTS.get(type(event))
    if special is not None:
        return special(event)
    account = getattr(event, "account", None)
    return () if account is None else (account,)


# ------------------------------------------------------------------------------------------
# Execution reports
# ------------------------------------------------------------------------------------------


def order_report(
    row: list[int],
    index: int,
    leg: int,
    client_of: Mapping[int, str],
    request_id: int,
    symbol: str,
    annotation: Annotation = NO_ANNOTATION,
) -> p.ExecutionReport:
    """The ExecutionReport of one leg of an order event row.

    Built positionally (hot path); field order: seq, index, leg, ts_ns, exec_type, account,
    order_id, client_order_id, request_id, instrument, side, price_ticks, qty_t, leaves_qty_t,
    last_qty_t, last_price_ticks, trade_id, liquidity, reason, order_type, tif,
    priority_kept, old_price_ticks, old_qty_t.

    A cancel or modify refusal names the target's client order id from ``annotation`` (the
    causing command's: present only when the command's account owns the target), and its
    reason is ``UNKNOWN_ORDER`` when the target was not the account's (module docstring).
    A hit-quote order refused for a quote beyond the best levels is reported as
    ``QUOTE_NOT_FOUND``: orders beyond the levels ``Quotes`` shows are not public.
    """
    kind, seq, ts = row[_K], row[_SEQ], row[_TS]
    if kind == r.EV_TRADE:
        if leg == 0:
            order_id, account, side, leaves, liquidity = (
                row[_OID],
                row[_ACC],
                row[_SIDE],
                row[_TAKER_LEAVES],
                _TAKER,
            )
        else:
            order_id, account, side, leaves, liquidity = (
                row[_MAKER_ORDER_ID],
                row[_MAKER_ACCOUNT],
                3 - row[_SIDE],
                row[_MAKER_LEAVES],
                _MAKER,
            )
        return p.ExecutionReport(
            seq,
            index,
            leg,
            ts,
            _FILLED if leaves == 0 else _PARTIAL,
            account,
            order_id,
            client_of.get(order_id, ""),
            request_id,
            symbol,
            side,
            0,
            0,
            leaves,
            row[_QTY],
            row[_PRICE],
            row[_TRADE_ID],
            liquidity,
            0,
            0,
            0,
            False,
            0,
            0,
        )
    order_id, account = row[_OID], row[_ACC]
    client_order_id = client_of.get(order_id, "")
    if kind == r.EV_ACCEPTED:
        qty = row[_QTY]
        return p.ExecutionReport(
            seq,
            index,
            0,
            ts,
            _ACCEPTED,
            account,
            order_id,
            client_order_id,
            request_id,
            symbol,
            row[_SIDE],
            row[_PRICE],
            qty,
            qty,
            0,
            0,
            0,
            0,
            0,
            row[_ORDER_TYPE],
            row[_TIF],
            False,
            0,
            0,
        )
    if kind == r.EV_CANCELLED:
        reason = row[_REASON]
        return p.ExecutionReport(
            seq,
            index,
            0,
            ts,
            _EXPIRED if reason == _SESSION_END else _CANCELLED,
            account,
            order_id,
            client_order_id,
            request_id,
            symbol,
            row[_SIDE],
            row[_PRICE],
            row[_QTY],
            0,
            0,
            0,
            0,
            0,
            reason,
            0,
            0,
            False,
            0,
            0,
        )
    if kind == r.EV_MODIFIED:
        qty = row[_QTY]
        return p.ExecutionReport(
            seq,
            index,
            0,
            ts,
            _MODIFIED,
            account,
            order_id,
            client_order_id,
            request_id,
            symbol,
            row[_SIDE],
            row[_PRICE],
            qty,
            qty,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            bool(row[_PRIORITY_KEPT]),
            row[_OLD_PRICE],
            row[_OLD_QTY],
        )
    if kind == r.EV_REJECTED:
        reason = row[_REASON]
        if reason == _QUOTE_BEYOND:
            reason = _QUOTE_NOT_FOUND
        return p.ExecutionReport(
            seq,
            index,
            0,
            ts,
            _REJECTED,
            account,
            order_id,
            client_order_id,
            request_id,
            symbol,
            row[_SIDE],
            row[_PRICE],
            row[_QTY],
            0,
            0,
            0,
            0,
            0,
            reason,
            0,
            0,
            False,
            0,
            0,
        )
    if kind == r.EV_CANCEL_REJECTED or kind == r.EV_MODIFY_REJECTED:
        cancel = kind == r.EV_CANCEL_REJECTED
        reason = row[_REASON]
        if annotation.hidden or reason == _NOT_ORDER_OWNER:
            reason = _UNKNOWN_ORDER
        return p.ExecutionReport(
            seq,
            index,
            0,
            ts,
            _CANCEL_REJECTED if cancel else _MODIFY_REJECTED,
            account,
            order_id,
            annotation.client_order_id,
            request_id,
            "",
            0,
            0 if cancel else row[_PRICE],
            0 if cancel else row[_QTY],
            0,
            0,
            0,
            0,
            0,
            reason,
            0,
            0,
            False,
            0,
            0,
        )
    raise ValueError(f"not an order event kind: {kind}")


# ------------------------------------------------------------------------------------------
# The routing rule
# ------------------------------------------------------------------------------------------


def messages_for(
    scope: Scope,
    row: list[int],
    index: int,
    annotation: Annotation,
    client_of: Mapping[int, str],
    codec: r.Codec,
) -> list:
    """The durable messages one session receives for one event.

    Parameters
    ----------
    scope : Scope
        The session's user, accounts and drop-copy flag.
    row : list of int
        The event's record (``engine.core.records.EVENT_DTYPE`` values).
    index : int
        The event's position among its command's events.
    annotation : Annotation
        The annotation of the command that caused the event (``NO_ANNOTATION`` if none).
    client_of : Mapping[int, str]
        Engine order id -> client order id.
    codec : engine.core.records.Codec
        The exchange's codec (instrument names, typed events).
    """
    if scope.drop_copy:
        return [
            p.DropCopy(
                seq=row[_SEQ],
                index=index,
                user=annotation.user,
                request_id=annotation.request_id,
                client_order_id=annotation.client_order_id,
                event=codec.event(row),
            )
        ]
    own = annotation.user == scope.user and scope.user != ""
    if row[_K] in ORDER_KINDS:
        symbol = codec.symbol(row[_INST]) if row[_INST] >= -1 else "?"
        return [
            order_report(
                row,
                index,
                leg,
                client_of,
                annotation.request_id if own and leg == 0 else 0,
                symbol,
                annotation,
            )
            for leg, account in legs(row)
            if account in scope.accounts
        ]
    event = codec.event(row)
    if own or any(account in scope.accounts for account in accounts_of(event)):
        return [
            p.EventReport(
                seq=row[_SEQ],
                index=index,
                request_id=annotation.request_id if own else 0,
                event=confidential(event, annotation),
            )
        ]
    return []


_UNKNOWN_TARGET = {
    s.BlockCommandRejected: s.RejectReason.UNKNOWN_BLOCK_OFFER,
    s.AuctionCommandRejected: s.RejectReason.UNKNOWN_AUCTION,
}


def confidential(event, annotation: Annotation):
    """``event`` as a trader may see it: the refusal of a command that named another account's
    block offer or an auction it may not see becomes the refusal of an unknown id (reason
    ``UNKNOWN_BLOCK_OFFER`` / ``UNKNOWN_AUCTION``, instrument "?"), exactly as the engine
    answers an id that does not exist.

    Examples
    --------
    >>> hidden = Annotation("mallory", 1, "", hidden=True)
    >>> event = s.BlockCommandRejected(9, 0, 41, 5, 7, "CEA-A", 0, 6000, 10,
    ...                                s.RejectReason.NOT_COUNTERPARTY)
    >>> shown = confidential(event, hidden)
    >>> (shown.instrument, shown.reason.name)
    ('?', 'UNKNOWN_BLOCK_OFFER')
    """
    unknown = _UNKNOWN_TARGET.get(type(event))
    if unknown is None:
        return event
    if annotation.hidden or event.reason == s.RejectReason.NOT_ORDER_OWNER:
        return msgspec.structs.replace(event, instrument="?", reason=unknown)
    return event
