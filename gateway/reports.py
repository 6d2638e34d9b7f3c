"""What each session is told about each engine event: the one routing rule, live and replay.

Theory of operation
-------------------
A session's *scope* is fixed at logon: its user, the accounts it may trade for, whether it
is a drop copy.  :func:`messages_for` maps (scope, event, the event's position, the
annotation of the command that caused it) to the messages that session receives - execution
reports from the point of view of the session's own accounts, event reports for the user's
own non-order commands, or the raw event for a drop copy.  The server calls it live for every
session an event concerns, and again for a resumed session while it replays the log, so the
replayed stream is by construction the stream that was (or would have been) sent live.

A trade is reported twice, once per leg (0: the taker's order, 1: the maker's); a trader
sees only the legs of its own accounts and never the counterparty's account or order.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from engine import schema as s
from gateway import protocol as p
from gateway.orders import Annotation


class Scope(msgspec.Struct, frozen=True):
    """What one session may see."""

    user: str
    accounts: frozenset[int]
    drop_copy: bool = False


def _legs_of_trade(e: s.TradeExecuted) -> list[tuple[int, int]]:
    return [(0, e.taker_account), (1, e.maker_account)]


def _leg_of(e) -> list[tuple[int, int]]:
    return [(0, e.account)]


ORDER_EVENT_LEGS: dict[type, Callable] = {
    s.OrderAccepted: _leg_of,
    s.OrderRejected: _leg_of,
    s.TradeExecuted: _legs_of_trade,
    s.OrderCancelled: _leg_of,
    s.OrderModified: _leg_of,
    s.CancelRejected: _leg_of,
    s.ModifyRejected: _leg_of,
}
"""Order events -> (leg, account) pairs; each becomes one ExecutionReport."""

EVENT_ACCOUNTS: dict[type, Callable] = {
    getattr(s, "AllowancesTransferred", None): lambda e: (e.account, e.to_account),
}
"""Non-order events naming accounts in fields other than ``account``."""
EVENT_ACCOUNTS.pop(None, None)


def accounts_of(event) -> tuple[int, ...]:
    """Accounts a non-order event concerns (their sessions receive it as an EventReport)."""
    special = EVENT_ACCOUNTS.get(type(event))
    if special is not None:
        return special(event)
    account = getattr(event, "account", None)
    return () if account is None else (account,)


def event_accounts(event) -> tuple[int, ...]:
    """Every account an event concerns (order legs included)."""
    legs = ORDER_EVENT_LEGS.get(type(event))
    if legs is not None:
        return tuple(account for _, account in legs(event))
    return accounts_of(event)


# ------------------------------------------------------------------------------------------
# Execution reports
# ------------------------------------------------------------------------------------------

_ET = p.ExecType


def _trade_report(e: s.TradeExecuted, index: int, leg: int, client_of: dict, request_id: int):
    if leg == 0:
        account, order_id, side, leaves = (
            e.taker_account, e.taker_order_id, int(e.aggressor_side), e.taker_leaves_t
        )  # fmt: skip
        liquidity = p.Liquidity.TAKER
    else:
        account, order_id, leaves = e.maker_account, e.maker_order_id, e.maker_leaves_t
        side = 3 - int(e.aggressor_side)
        liquidity = p.Liquidity.MAKER
    return p.ExecutionReport(
        seq=e.seq, index=index, leg=leg, ts_ns=e.ts_ns,
        exec_type=_ET.FILLED if leaves == 0 else _ET.PARTIALLY_FILLED, account=account,
        order_id=order_id, client_order_id=client_of.get(order_id, ""), request_id=request_id,
        instrument=e.instrument, side=side, price_ticks=0, qty_t=0, leaves_qty_t=leaves,
        last_qty_t=e.qty_t, last_price_ticks=e.price_ticks, trade_id=e.trade_id,
        liquidity=liquidity,
    )  # fmt: skip


def execution_report(event, index: int, leg: int, client_of: dict, request_id: int):
    """The ExecutionReport of one leg of an order event."""
    t = type(event)
    if t is s.TradeExecuted:
        return _trade_report(event, index, leg, client_of, request_id)
    e = event
    common = dict(
        seq=e.seq, index=index, leg=0, ts_ns=e.ts_ns, account=e.account, order_id=e.order_id,
        client_order_id=client_of.get(e.order_id, ""), request_id=request_id,
    )  # fmt: skip
    if t is s.OrderAccepted:
        return p.ExecutionReport(
            **common, exec_type=_ET.ACCEPTED, instrument=e.instrument, side=int(e.side),
            price_ticks=e.price_ticks, qty_t=e.qty_t, leaves_qty_t=e.qty_t,
            order_type=int(e.order_type), tif=int(e.tif),
        )  # fmt: skip
    if t is s.OrderCancelled:
        expired = e.reason == s.CancelReason.SESSION_END
        return p.ExecutionReport(
            **common, exec_type=_ET.EXPIRED if expired else _ET.CANCELLED,
            instrument=e.instrument, side=int(e.side), price_ticks=e.price_ticks, qty_t=e.qty_t,
            leaves_qty_t=0, reason=int(e.reason),
        )  # fmt: skip
    if t is s.OrderModified:
        return p.ExecutionReport(
            **common, exec_type=_ET.MODIFIED, instrument=e.instrument, side=int(e.side),
            price_ticks=e.price_ticks, qty_t=e.qty_t, leaves_qty_t=e.qty_t,
            priority_kept=e.priority_kept, old_price_ticks=e.old_price_ticks,
            old_qty_t=e.old_qty_t,
        )  # fmt: skip
    if t is s.OrderRejected:
        return p.ExecutionReport(
            **common, exec_type=_ET.REJECTED, instrument=e.instrument, side=int(e.side),
            price_ticks=e.price_ticks, qty_t=e.qty_t, leaves_qty_t=0, reason=int(e.reason),
        )  # fmt: skip
    if t is s.CancelRejected:
        return p.ExecutionReport(
            **common, exec_type=_ET.CANCEL_REJECTED, instrument="", side=0, price_ticks=0,
            qty_t=0, leaves_qty_t=0, reason=int(e.reason),
        )  # fmt: skip
    if t is s.ModifyRejected:
        return p.ExecutionReport(
            **common, exec_type=_ET.MODIFY_REJECTED, instrument="", side=0,
            price_ticks=e.price_ticks, qty_t=e.qty_t, leaves_qty_t=0, reason=int(e.reason),
        )  # fmt: skip
    raise TypeError(f"not an order event: {event!r}")


# ------------------------------------------------------------------------------------------
# The routing rule
# ------------------------------------------------------------------------------------------


def messages_for(scope: Scope, event, index: int, annotation: Annotation,
                 client_of: dict) -> list:  # fmt: skip
    """The durable messages one session receives for one event.

    Parameters
    ----------
    scope : Scope
        The session's user, accounts and drop-copy flag.
    event : engine event
    index : int
        The event's position among its command's events.
    annotation : Annotation
        The annotation of the command that caused the event (``NO_ANNOTATION`` if none).
    client_of : dict
        Engine order id -> client order id.
    """
    if scope.drop_copy:
        return [p.DropCopy(
            seq=event.seq, index=index, user=annotation.user, request_id=annotation.request_id,
            client_order_id=annotation.client_order_id, event=event,
        )]  # fmt: skip
    own = annotation.user == scope.user and scope.user != ""
    legs = ORDER_EVENT_LEGS.get(type(event))
    if legs is not None:
        return [
            execution_report(event, index, leg, client_of,
                             annotation.request_id if own and leg == 0 else 0)
            for leg, account in legs(event)
            if account in scope.accounts
        ]  # fmt: skip
    if own or any(account in scope.accounts for account in accounts_of(event)):
        return [p.EventReport(
            seq=event.seq, index=index, request_id=annotation.request_id if own else 0,
            event=event,
        )]  # fmt: skip
    return []
