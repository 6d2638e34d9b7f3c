"""Who may send which engine command, and for which accounts: one table.

Theory of operation
-------------------
Authorisation looks only at the *type* of the engine command a request becomes
(``engine.core.schema``) and the accounts it names - it is asked before the command is built -
so a new command type (a registry command, say) needs exactly one line in
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

QUERY_ROLES = frozenset({Role.TRADER, Role.OPERATOR, Role.REGISTRY})
"""Roles that may ask for an account's state (``AccountQuery``): traders for their accounts,
the others for any."""

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


def refusal(
    role: Role,
    command_type: type,
    account: int | None,
    bound: frozenset[int],
    to_account: int | None = None,
) -> RejectCode | None:
    """Why a command of ``command_type`` naming ``account`` (and ``to_account``, for a
    transfer) is refused to a user with ``role`` bound to ``bound`` accounts (None: allowed).

    No command object is needed: the gateway asks before it builds one.  ``None`` for an
    account means the command has no such field.

    Examples
    --------
    >>> refusal(Role.TRADER, s.HaltInstrument, None, frozenset({7}))
    <RejectCode.NOT_PERMITTED: 1>
    >>> refusal(Role.TRADER, s.MassCancel, 8, frozenset({7}))
    <RejectCode.ACCOUNT_NOT_PERMITTED: 2>
    >>> refusal(Role.TRADER, s.MassCancel, 7, frozenset({7})) is None
    True
    """
    if role not in ROLES_BY_COMMAND.get(command_type, ()):
        return RejectCode.NOT_PERMITTED
    if role in ACCOUNT_BOUND_ROLES and (
        (account is not None and account not in bound)
        or (to_account is not None and to_account not in bound)
    ):
        return RejectCode.ACCOUNT_NOT_PERMITTED
    return None


def command_refusal(role: Role, bound: frozenset[int], command: object) -> RejectCode | None:
    """:func:`refusal` for a whole engine command (a client's ``EngineRequest``): its type and
    its :data:`ACCOUNT_FIELDS`.

    Examples
    --------
    >>> command_refusal(Role.TRADER, frozenset({7}), s.MassCancel(account=8))
    <RejectCode.ACCOUNT_NOT_PERMITTED: 2>
    """
    account, to_account = (getattr(command, field, None) for field in ACCOUNT_FIELDS)
    return refusal(role, type(command), account, bound, to_account)
