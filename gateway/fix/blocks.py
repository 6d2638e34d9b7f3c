"""Block offers (the carbon market's bilateral block trades) over FIX: user-defined messages.

Theory of operation
-------------------
FIX 4.4 has no message for a bilateral block offer, so the acceptor defines three inbound
messages and one outbound (docs/FIX.md, "Block offers"):

* **BlockOfferNew (U1)**, **BlockOfferAccept (U2)**, **BlockOfferCancel (U3)** become the
  native ``EngineRequest`` carrying ``SubmitBlockOffer`` / ``AcceptBlockOffer`` /
  ``CancelBlockOffer``, exactly what a native client sends; the core checks permissions, assigns
  the offer id (the command's seq) and hides other firms' offers as it does for native clients.
* **BlockOfferReport (U4)** is sent for every block event the core reports to the session
  (``EventReport`` of ``BlockOfferPosted``, ``BlockTradeExecuted``, ``BlockOfferCancelled``,
  ``BlockCommandRejected``: the requester's own and those naming its accounts, e.g. a directed
  offer to it) and for a gateway ``Reject`` of a U1-U3.  It states only what the native event
  states, so a refusal concerning another firm's offer reads exactly like one for an unknown id.

Functions take the :class:`~gateway.fix.session.FixSession`; they do no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.core import limits
from engine.core import schema as s
from gateway import protocol as p
from gateway.fix import codec as c
from gateway.fix.codec import FixMessage

if TYPE_CHECKING:
    from gateway.fix.session import FixSession, Request

COUNTERPARTY = 20010
"""Custom tag: the other party's account (U1: the counterparty of a directed offer, absent for
an open offer; U4: the named counterparty of a posted offer, the accepting account of a trade)."""
OFFER_ID = 20011
"""Custom tag: the block offer id (the seq of the command that posted it)."""
KINDS = frozenset({"U1", "U2", "U3"})
"""MsgTypes of the block requests (their ``Request.kind``)."""
REPORT = "U4"
POSTED, TRADED, CANCELLED, REJECTED = "0", "2", "4", "8"
"""OrdStatus (39) of a BlockOfferReport."""
_COMMAND_MSG_TYPES = {
    int(s.SubmitBlockOffer.__struct_config__.tag): "U1",  # type: ignore[arg-type]
    int(s.AcceptBlockOffer.__struct_config__.tag): "U2",  # type: ignore[arg-type]
    int(s.CancelBlockOffer.__struct_config__.tag): "U3",  # type: ignore[arg-type]
}
EVENT_TYPES = frozenset(
    {s.BlockOfferPosted, s.BlockTradeExecuted, s.BlockOfferCancelled, s.BlockCommandRejected}
)
_SIDE_CODES = {int(s.Side.BUY): "1", int(s.Side.SELL): "2"}


def new_offer(session: FixSession, m: FixMessage) -> None:
    """BlockOfferNew (U1) -> ``SubmitBlockOffer``."""
    from gateway.fix.session import Request, _cl_ord_id, _side, _symbol

    request = Request("U1", _cl_ord_id(m, 11), symbol=_symbol(m), side=_side(m))
    qty = m.integer(38, low=-(2**62))
    counterparty = m.integer(COUNTERPARTY, default=-1, high=p.I32_MAX)

    def build(account: int, price: int) -> s.SubmitBlockOffer:
        side = s.Side(request.side)
        return s.SubmitBlockOffer(
            offer_id=0, account=account, instrument=request.symbol, side=side, qty_t=qty,
            price_ticks=price, counterparty=counterparty,
        )  # fmt: skip

    _submit(session, m, request, build)


def accept_offer(session: FixSession, m: FixMessage) -> None:
    """BlockOfferAccept (U2) -> ``AcceptBlockOffer`` (price and quantity must be the offer's)."""
    request = _offer_request(m, "U2")
    qty = m.integer(38, low=-(2**62))
    offer_id = int(request.detail)

    def build(account: int, price: int) -> s.AcceptBlockOffer:
        return s.AcceptBlockOffer(offer_id=offer_id, account=account, price_ticks=price, qty_t=qty)

    _submit(session, m, request, build)


def cancel_offer(session: FixSession, m: FixMessage) -> None:
    """BlockOfferCancel (U3) -> ``CancelBlockOffer``."""
    request = _offer_request(m, "U3")
    offer_id = int(request.detail)

    def build(account: int, price: int) -> s.CancelBlockOffer:
        return s.CancelBlockOffer(offer_id=offer_id, account=account)

    _submit(session, m, request, build, priced=False)


def _offer_request(m: FixMessage, kind: str) -> Request:
    from gateway.fix.session import Request, _cl_ord_id

    cl_ord_id = _cl_ord_id(m, 11) if m.get(11) is not None else ""
    request = Request(kind, cl_ord_id)
    request.detail = str(m.integer(OFFER_ID, low=1))
    return request


def _submit(
    session: FixSession, m: FixMessage, request: Request, build: Callable, priced: bool = True
) -> None:
    """Resolve Account (1) and Price (44), then send the command (or refuse with a U4)."""
    from gateway.fix.session import _account

    account = _account(m)
    if account == -1 and len(session.accounts) == 1:
        account = session.only_account
    if account == -1:
        _refused(session, request, "Account (1) required", 0)
        return
    price = 0
    if priced:
        try:
            price = c.price_fen(m.require(44))
        except ValueError as exc:
            _refused(session, request, str(exc), 0)
            return
    command = build(account, price)
    session.on_message(p.EngineRequest(request_id=session._request(request), command=command))


def rejected(session: FixSession, request: Request, text: str, code: int) -> None:
    """The gateway refused a U1-U3 before the engine (``Reject``)."""
    _refused(session, request, text, code)


def _refused(session: FixSession, request: Request, text: str, code: int) -> None:
    fields: list[tuple[int, object]] = []
    if request.cl_ord_id:
        fields.append((11, request.cl_ord_id))
    fields += [
        (OFFER_ID, request.detail or "NONE"),
        (39, REJECTED),
        (372, request.kind),
        (58, text[: limits.TEXT_CHARS_MAX]),
    ]
    if code:
        fields.append((20003, code))
    session._send_app(REPORT, fields)


def report(session: FixSession, m: p.EventReport, request: Request | None) -> None:
    """A BlockOfferReport (U4) of one block event the core reported to the session."""
    e = m.event
    fields: list[tuple[int, object]] = []
    if request is not None and request.cl_ord_id:
        fields.append((11, request.cl_ord_id))
    fields += [(OFFER_ID, e.offer_id), (17, f"{m.seq}-{m.index}")]
    t = type(e)
    if t is s.BlockOfferPosted:
        fields += _terms(POSTED, e.account, e.instrument, e.side, e.qty_t, e.price_ticks)
        if e.counterparty >= 0:
            fields.append((COUNTERPARTY, e.counterparty))
    elif t is s.BlockTradeExecuted:
        fields += _terms(TRADED, e.offer_account, e.instrument, e.offer_side, e.qty_t, 0)
        fields += [
            (COUNTERPARTY, e.accepting_account),
            (32, e.qty_t),
            (31, c.format_fen(e.price_ticks)),
            (880, e.trade_id),
        ]
    elif t is s.BlockOfferCancelled:
        fields += _terms(CANCELLED, e.account, e.instrument, e.side, e.qty_t, e.price_ticks)
        fields += [(58, s.CancelReason(e.reason).name), (20002, int(e.reason))]
    else:
        fields += _terms(REJECTED, e.account, e.instrument, e.side, e.qty_t, e.price_ticks)
        fields += [
            (372, _COMMAND_MSG_TYPES.get(e.command, "")),
            (58, s.RejectReason(e.reason).name),
            (20002, int(e.reason)),
        ]
    fields.append((60, c.utc_timestamp(e.ts_ns)))
    session._send_app(REPORT, [(tag, value) for tag, value in fields if value != ""])


def _terms(
    status: str, account: int, instrument: str, side: int, qty: int, price: int
) -> list[tuple[int, object]]:
    fields: list[tuple[int, object]] = [(39, status), (1, account), (55, instrument)]
    if side in _SIDE_CODES:
        fields.append((54, _SIDE_CODES[side]))
    fields.append((38, qty))
    if price > 0:
        fields.append((44, c.format_fen(price)))
    return fields
