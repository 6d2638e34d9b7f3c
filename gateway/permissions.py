"""Who may send which engine command, and for which accounts: one table.

Theory of operation
-------------------
Every request that reaches the engine is first turned into a typed engine command
(``engine.core.schema``); authorisation then looks only at the command's *type* and its account
fields, so a new command type (a registry command, say) needs exactly one line in
:data:`ROLES_BY_COMMAND` and nothing else.  A type missing from the table is refused to
everyone (default deny).  A role in :data:`ACCOUNT_BOUND_ROLES` may name only the accounts its
user is bound to, in every account field the command has.
"""

from __future__ import annotations

from engine.core import schema as s
from gateway.protocol import RejectCode, Role

_TRADER = frozenset({Role.TRADER})
_OPERATOR = frozenset({Role.OPERATOR})
_REGISTRY = frozenset({Role.REGISTRY})

ROLES_BY_COMMAND: dict[type, frozenset[Role]] = {
    s.SubmitOrder: _TRADER,
    s.CancelOrder: _TRADER,
    s.ModifyOrder: _TRADER,
    s.MassCancel: frozenset({Role.TRADER, Role.OPERATOR}),
    s.OpenSession: _OPERATOR,
    s.CloseSession: _OPERATOR,
    s.HaltInstrument: _OPERATOR,
    s.ResumeInstrument: _OPERATOR,
    s.SetTradingPhase: _OPERATOR,
    s.SubmitBlockOffer: _TRADER,
    s.AcceptBlockOffer: _TRADER,
    s.CancelBlockOffer: _TRADER,
    s.ApplyAuction: _TRADER,
    s.SubmitAuctionBid: _TRADER,
    s.AnnounceAuction: _OPERATOR,
    s.ClearAuction: _OPERATOR,
    s.CancelAuction: _OPERATOR,
    **{command: _REGISTRY for command in getattr(s, "REGISTRY_COMMAND_TYPES", ())},
}
"""Command type -> the roles that may send it."""

ACCOUNT_BOUND_ROLES = frozenset({Role.TRADER})
"""Roles that may act only for the accounts their user is bound to."""

ACCOUNT_FIELDS = ("account", "to_account")
"""Fields of a command that name an account."""

GATEWAY_ASSIGNED = frozenset({s.SubmitOrder})
"""Commands whose identifiers the gateway assigns: they come only as ``NewOrder``."""

ASSIGNED_ID_FIELDS: dict[type, str] = {
    s.SubmitBlockOffer: "offer_id",
    s.ApplyAuction: "auction_id",
    s.SubmitAuctionBid: "bid_id",
}
"""Commands that create something whose id the gateway assigns (the command's seq): a client
cannot pick, guess or collide with another firm's ids."""


def refusal(role: Role, accounts: frozenset[int], command: object) -> RejectCode | None:
    """Why ``command`` is refused to a user with ``role`` bound to ``accounts`` (None: allowed).

    Examples
    --------
    >>> refusal(Role.TRADER, frozenset({7}), s.HaltInstrument(instrument="CEA-2024"))
    <RejectCode.NOT_PERMITTED: 1>
    >>> refusal(Role.TRADER, frozenset({7}), s.MassCancel(account=8))
    <RejectCode.ACCOUNT_NOT_PERMITTED: 2>
    >>> refusal(Role.TRADER, frozenset({7}), s.MassCancel(account=7)) is None
    True
    """
    if role not in ROLES_BY_COMMAND.get(type(command), ()):
        return RejectCode.NOT_PERMITTED
    if role in ACCOUNT_BOUND_ROLES:
        for field in ACCOUNT_FIELDS:
            account = getattr(command, field, None)
            if account is not None and account not in accounts:
                return RejectCode.ACCOUNT_NOT_PERMITTED
    return None
