"""What a FIX execution report says beyond the native one: OrderQty, CumQty and AvgPx.

Theory of operation
-------------------
The native ``ExecutionReport`` carries an order's open quantity and each fill; FIX wants the
order's total quantity, its cumulative filled quantity and the average price of its fills
with every report.  :class:`OrderLedger` keeps, for every order of the exchange, (quantity,
filled, cost in fen, limit price, side, ended status): built at start-up from the log (every
event since seq 1) and kept current from each durable batch's event records, in event order.
For each order event of a batch :meth:`OrderLedger.apply` also returns the order's figures
*as of that event*, keyed by (seq, index, leg), which is what the FIX sessions' reports of
that batch carry (a batch's later fills do not leak into its earlier reports).

A modify sets the open quantity: the order's quantity becomes filled + open.

:meth:`OrderLedger.before` undoes the last events applied, for the orders they touch: a FIX
session that missed reports while logged out gets them regenerated from the log with the
figures each had when it happened.
"""

from __future__ import annotations

from engine.core import records as r

_K, _SEQ, _OID, _SIDE, _PRICE, _QTY = (
    r.E_KIND,
    r.E_SEQ,
    r.E_ORDER_ID,
    r.E_SIDE,
    r.E_PRICE,
    r.E_QTY,
)
_X0, _X1 = r.E_X0, r.E_X1
_OLD_QTY, _OLD_PRICE = r.ORDER_MODIFIED.old_qty_t, r.ORDER_MODIFIED.old_price_ticks

LIVE, FILLED, CANCELLED, REJECTED = 0, 1, 2, 3
"""An order's status in the ledger (FIX OrdStatus is derived from it and its fills)."""


class OrderLedger:
    """Per order: ``[qty_t, filled_t, cost_fen, price_ticks, side, status]``."""

    def __init__(self) -> None:
        self.orders: dict[int, list[int]] = {}

    @classmethod
    def recover(cls, exchange) -> OrderLedger:
        """Rebuild from every event in the exchange's log."""
        ledger = cls()
        codec = exchange.codec
        if exchange.last_seq >= 1:
            seq, rows = 0, list[list[int]]()
            for event in exchange.events_since(1):
                if len(rows) >= 4096 and event.seq != seq:  # whole commands per chunk
                    ledger.apply(rows)
                    rows = []
                rows.append(codec.event_row(event))
                seq = event.seq
            ledger.apply(rows)
        return ledger

    def apply(self, rows: list) -> dict[tuple[int, int, int], tuple[int, int, int]]:
        """Apply one batch's event rows (in order); returns, per (seq, index, leg) of each
        order event, the order's (qty_t, filled_t, cost_fen) after it."""
        orders, after = self.orders, {}
        seq, index = 0, 0
        for row in rows:
            if row[_SEQ] != seq:
                seq, index = row[_SEQ], 0
            kind = row[_K]
            if kind == r.EV_ACCEPTED:
                order = orders[row[_OID]] = [row[_QTY], 0, 0, row[_PRICE], row[_SIDE], LIVE]
                after[(seq, index, 0)] = (order[0], 0, 0)
            elif kind == r.EV_TRADE:
                qty, price = row[_QTY], row[_PRICE]
                for leg, order_id, leaves in (
                    (0, row[_OID], row[r.E_X3]),
                    (1, row[_X0], row[r.E_X4]),
                ):
                    traded = orders.get(order_id)
                    if traded is None:  # pragma: no cover - every traded order was accepted
                        continue
                    traded[1] += qty
                    traded[2] += qty * price
                    if leaves == 0:
                        traded[5] = FILLED
                    after[(seq, index, leg)] = (traded[0], traded[1], traded[2])
            elif kind == r.EV_REJECTED:
                orders[row[_OID]] = [row[_QTY], 0, 0, row[_PRICE], row[_SIDE], REJECTED]
                after[(seq, index, 0)] = (row[_QTY], 0, 0)
            elif kind in _OTHER_ORDER_KINDS:
                known = orders.get(row[_OID])
                if known is not None:
                    if kind == r.EV_CANCELLED:
                        known[5] = CANCELLED
                    elif kind == r.EV_MODIFIED:
                        known[0], known[3] = known[1] + row[_QTY], row[_PRICE]
                    after[(seq, index, 0)] = (known[0], known[1], known[2])
            index += 1
        return after

    def before(self, rows: list) -> OrderLedger:
        """The orders ``rows`` touch, as they were before them: ``rows`` must be the last event
        rows this ledger applied, in order.  They are undone from the end (a trade's quantity
        and cost taken back, a modify's old quantity and price restored, an order accepted or
        rejected among them absent), so ``before(rows).apply(rows)`` gives each event's
        figures as the live ledger gave them (a reconnecting FIX session's missed reports).
        """
        state: dict[int, list[int] | None] = {}

        def touched(order_id: int) -> list[int] | None:
            if order_id not in state:
                known = self.orders.get(order_id)
                state[order_id] = None if known is None else list(known)
            return state[order_id]

        for row in reversed(rows):
            kind = row[_K]
            if kind == r.EV_ACCEPTED or kind == r.EV_REJECTED:
                state[row[_OID]] = None
            elif kind == r.EV_TRADE:
                for order_id in (row[_OID], row[_X0]):
                    traded = touched(order_id)
                    if traded is not None:
                        traded[1] -= row[_QTY]
                        traded[2] -= row[_QTY] * row[_PRICE]
                        traded[5] = LIVE
            elif kind == r.EV_CANCEL_REJECTED or kind == r.EV_MODIFY_REJECTED:
                touched(row[_OID])  # unchanged, but reported with its figures
            elif kind == r.EV_CANCELLED or kind == r.EV_MODIFIED:
                known = touched(row[_OID])
                if known is not None:
                    known[5] = LIVE
                    if kind == r.EV_MODIFIED:
                        known[0] = known[1] + row[_OLD_QTY]
                        known[3] = row[_OLD_PRICE]
        earlier = OrderLedger()
        earlier.orders = {order_id: order for order_id, order in state.items() if order}
        return earlier

    def status(self, order_id: int) -> tuple[int, int]:
        """(status, filled_t) of an order now ((REJECTED, 0) if unknown)."""
        order = self.orders.get(order_id)
        return (REJECTED, 0) if order is None else (order[5], order[1])


_OTHER_ORDER_KINDS = frozenset(
    {r.EV_CANCELLED, r.EV_MODIFIED, r.EV_CANCEL_REJECTED, r.EV_MODIFY_REJECTED}
)
