"""The compiled engine's integer codes (``engine.core.compiled.layout``) mirror the schema.

The kernels use plain ints so compiled code needs no Python objects; each code is checked here
against the enum or the record code it stands for, name by name, so renumbering one side
without the other fails.
"""

from __future__ import annotations

import pytest

from engine.core import records
from engine.core import schema as s
from engine.core.compiled import layout as L

R = s.RejectReason
REJECT_CODES = {
    "R_UNKNOWN_INSTRUMENT": R.UNKNOWN_INSTRUMENT,
    "R_SESSION_CLOSED": R.SESSION_CLOSED,
    "R_HALTED": R.INSTRUMENT_HALTED,
    "R_UNKNOWN_ACCOUNT": R.UNKNOWN_ACCOUNT,
    "R_ORDER_TYPE": R.INVALID_ORDER_TYPE,
    "R_TIF": R.INVALID_TIME_IN_FORCE,
    "R_QUANTITY": R.INVALID_QUANTITY,
    "R_OFF_LOT": R.QUANTITY_OFF_LOT,
    "R_OFF_TICK": R.PRICE_OFF_TICK,
    "R_OUT_OF_BAND": R.PRICE_OUT_OF_BAND,
    "R_ORDER_ID": R.INVALID_ORDER_ID,
    "R_DUPLICATE": R.DUPLICATE_ORDER_ID,
    "R_BOOK_FULL": R.BOOK_FULL,
    "R_WOULD_TRADE": R.WOULD_TRADE,
    "R_UNKNOWN_ORDER": R.UNKNOWN_ORDER,
    "R_NOT_OWNER": R.NOT_ORDER_OWNER,
    "R_ALREADY_OPEN": R.SESSION_ALREADY_OPEN,
    "R_NOT_OPEN": R.SESSION_NOT_OPEN,
    "R_NOT_HALTED": R.INSTRUMENT_NOT_HALTED,
    "R_TRADING_DATE": R.INVALID_TRADING_DATE,
    "R_MAY_NOT_TRADE": R.ACCOUNT_MAY_NOT_TRADE,
    "R_ACCOUNT_FROZEN": R.ACCOUNT_FROZEN,
    "R_NO_ALLOWANCES": R.INSUFFICIENT_ALLOWANCES,
    "R_NO_CASH": R.INSUFFICIENT_CASH,
    "R_INVALID_KEY": R.INVALID_KEY,
    "R_REGISTRY_DISABLED": R.REGISTRY_DISABLED,
    "R_INVALID_AMOUNT": R.INVALID_AMOUNT,
    "R_ACCOUNT_EXISTS": R.ACCOUNT_EXISTS,
    "R_INVALID_KIND": R.INVALID_ACCOUNT_KIND,
    "R_NOT_FROZEN": R.ACCOUNT_NOT_FROZEN,
    "R_NOT_COMPLIANCE": R.NOT_A_COMPLIANCE_ACCOUNT,
    "R_INVALID_YEAR": R.INVALID_YEAR,
    "R_YEAR_CLOSED": R.YEAR_CLOSED,
    "R_INVALID_GWP": R.INVALID_GWP,
    "R_NOT_ELIGIBLE": R.VINTAGE_NOT_ELIGIBLE,
    "R_OFFSET_LIMIT": R.OFFSET_LIMIT_EXCEEDED,
    "R_REGISTRY_FULL": R.REGISTRY_FULL,
    "R_FEE_ACCOUNT": R.FEE_ACCOUNT_NOT_OPEN,
    "R_MODE_NOT_ALLOWED": R.MODE_NOT_ALLOWED,
    "R_MODE_NOT_IN_PHASE": R.MODE_NOT_IN_PHASE,
    "R_QUOTE_NOT_FOUND": R.QUOTE_NOT_FOUND,
    "R_QUOTE_BEYOND_LEVELS": R.QUOTE_BEYOND_BEST_LEVELS,
    "R_QUOTE_OWN": R.QUOTE_OWN_ORDER,
    "R_UNKNOWN_BLOCK": R.UNKNOWN_BLOCK_OFFER,
    "R_BLOCK_TERMS": R.BLOCK_TERMS_MISMATCH,
    "R_NOT_COUNTERPARTY": R.NOT_COUNTERPARTY,
    "R_INVALID_COUNTERPARTY": R.INVALID_COUNTERPARTY,
    "R_UNKNOWN_AUCTION": R.UNKNOWN_AUCTION,
    "R_AUCTION_STATE": R.AUCTION_STATE,
    "R_AUCTION_TERMS": R.INVALID_AUCTION_TERMS,
    "R_SELLER_BID": R.SELLER_MAY_NOT_BID,
    "R_INVALID_PHASE": R.INVALID_PHASE,
}

CODES = [
    (L.BUY, s.Side.BUY),
    (L.SELL, s.Side.SELL),
    (L.LIMIT, s.OrderType.LIMIT),
    (L.MARKET, s.OrderType.MARKET),
    (L.POST_ONLY, s.OrderType.POST_ONLY),
    (L.HIT_QUOTE, s.OrderType.HIT_QUOTE),
    (L.DAY, s.TimeInForce.DAY),
    (L.GTC, s.TimeInForce.GTC),
    (L.IOC, s.TimeInForce.IOC),
    (L.FOK, s.TimeInForce.FOK),
    (L.STP_INCOMING, s.StpMode.CANCEL_INCOMING),
    (L.STP_RESTING, s.StpMode.CANCEL_RESTING),
    (L.STP_BOTH, s.StpMode.CANCEL_BOTH),
    (L.CLOSED, s.SessionState.CLOSED),
    (L.OPEN, s.SessionState.OPEN),
    (L.HALTED, s.SessionState.HALTED),
    (L.MODE_CONTINUOUS, s.TradingMode.CONTINUOUS),
    (L.MODE_HIT_QUOTE, s.TradingMode.HIT_QUOTE),
    (L.MODE_BLOCK, s.TradingMode.BLOCK),
    (L.MODE_AUCTION, s.TradingMode.AUCTION),
    (L.FLOOR_CLOSE, s.FloorRule.PREVIOUS_CLOSE),
    (L.FLOOR_MINUS_BAND, s.FloorRule.CLOSE_MINUS_BAND),
    (L.CLEAR_UNIFORM, s.ClearingRule.UNIFORM),
    (L.CLEAR_PAY_AS_BID, s.ClearingRule.PAY_AS_BID),
    (L.AUCTION_STATE_APPLIED, s.AuctionState.APPLIED),
    (L.AUCTION_STATE_BIDDING, s.AuctionState.BIDDING),
    (L.COMPLIANCE, s.AccountKind.COMPLIANCE),
    (L.INVESTOR, s.AccountKind.INVESTOR),
    (L.AUTHORITY, s.AccountKind.AUTHORITY),
    (L.FEE, s.AccountKind.FEE),
    (L.C_REQUESTED, s.CancelReason.REQUESTED),
    (L.C_IOC, s.CancelReason.IOC_REMAINDER),
    (L.C_FOK, s.CancelReason.FOK_NOT_FILLABLE),
    (L.C_STP, s.CancelReason.SELF_TRADE_PREVENTED),
    (L.C_MASS, s.CancelReason.MASS_CANCEL),
    (L.C_SESSION_END, s.CancelReason.SESSION_END),
    (L.C_PHASE_END, s.CancelReason.PHASE_END),
]


@pytest.mark.parametrize("code, member", CODES, ids=[str(member) for _, member in CODES])
def test_a_code_is_its_enum_members_value(code: int, member) -> None:
    assert code == member.value


def test_every_reject_reason_has_its_code() -> None:
    assert {getattr(L, name): reason for name, reason in REJECT_CODES.items()} == {
        reason.value: reason for reason in R if reason is not R.NONE
    }
    assert {name for name in dir(L) if name.startswith("R_")} == set(REJECT_CODES)


def test_command_and_event_kinds_are_the_records_kinds() -> None:
    kinds = [name for name in dir(L) if name.startswith(("K_", "EV_"))]
    assert kinds and all(getattr(L, name) == getattr(records, name) for name in kinds)
