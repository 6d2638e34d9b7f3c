"""The layout of the compiled engine's state array, and the integer codes the kernels use.

One module holds the vocabulary shared by the matching kernel (``engine.core.compiled.kernel``) and the
ledger kernel (``engine.core.compiled.ledger``): header words (``M_*``), table columns (``I_*`` instruments,
``O_*`` orders, ``L_*`` price levels, ``A_*`` accounts, ``H_*`` holdings, ``C_*`` compliance,
``KEY_*`` idempotency keys), and the codes of ``engine.core.schema`` as plain ints, so compiled code
needs no Python objects.  ``tests/test_layout.py`` checks the codes against the schema.
"""

from __future__ import annotations

# --- header words -------------------------------------------------------------------------
M_N_INST, M_N_ACCOUNTS, M_CAP, M_LADDER, M_HCAP, M_LIVE, M_FREE, M_HWM, M_NEXT_TRADE = range(9)
M_OFF_INST, M_OFF_ORDERS, M_OFF_HASH, M_OFF_LEVELS, M_OFF_BLOCKS, M_OFF_SUPERS = range(16, 22)
M_NB, M_NS = 22, 23
(M_REGISTRY, M_FEE_ACCOUNT, M_BUY_BPS, M_SELL_BPS, M_FIRST_YEAR, M_PENALTY, M_OFFSET_BPS,
 M_KEYS_CAP, M_KEYS_USED, M_CLOSED_YEARS, M_DEPOSITED, M_WITHDRAWN, M_OFF_ACC, M_OFF_HOLD,
 M_OFF_COMP, M_OFF_KEYS, M_KEYS_LIMIT) = range(24, 41)  # fmt: skip
# trading modes (docs/TRADING_MODES.md): block offers, auctions and their bids
(M_OFF_BLOCK, M_BLOCK_CAP, M_BLOCK_HWM, M_BLOCK_LIVE, M_OFF_AUCTIONS, M_AUCTIONS_CAP,
 M_AUCTIONS_HWM, M_OFF_BIDS, M_BIDS_CAP, M_BIDS_HWM, M_BIDS_LIVE,
 M_NEXT_ARRIVAL) = range(41, 53)  # fmt: skip
META_LEN = 56

# --- instrument columns -------------------------------------------------------------------
(I_STATE, I_DATE, I_REF, I_LO, I_HI, I_TICK, I_LOT, I_MINQ, I_MAXQ, I_BAND, I_BID, I_ASK,
 I_OPEN, I_HIGH, I_LOW, I_VOL, I_VAL, I_TRADES, I_ISSUED, I_CLAWED, I_SURRENDERED, I_CANCELLED,
 I_VINTAGE, I_OFFSET,
 # trading modes: allowed modes, packed phase masks (4 bits a phase), phase count, current
 # phase, hit-quote depth, block and auction parameters and bands, and the session's block
 # and auction business (reset after SessionModeVolumes at the close)
 I_MODES, I_PHASE_MASKS, I_N_PHASES, I_PHASE, I_QUOTE_LEVELS, I_BLOCK_MINQ, I_BLOCK_BAND,
 I_BLOCK_LO, I_BLOCK_HI, I_AUCTION_MINQ, I_AUCTION_BAND, I_BLOCK_VOL, I_BLOCK_VAL,
 I_BLOCK_TRADES, I_AUCTION_VOL, I_AUCTION_VAL, I_AUCTION_TRADES) = range(41)  # fmt: skip
IF = 41

# --- order columns ------------------------------------------------------------------------
(O_ID, O_ACCOUNT, O_INST, O_SIDE, O_PRICE, O_LEAVES, O_PREV, O_NEXT, O_TYPE, O_TIF, O_STP,
 O_LOCK_PRICE) = range(12)  # fmt: skip
OF = 12

# --- account, holding, compliance and idempotency-key columns (registry) ------------------
A_OPEN, A_KIND, A_SECTOR, A_PROVINCE, A_FROZEN, A_CASH, A_CASH_LOCKED = range(7)
AF = 8
H_TRADABLE, H_LOCKED, H_FROZEN, H_UNSETTLED = range(4)
HF = 4
C_OBLIGATION, C_SURRENDERED, C_OFFSETS, C_REPORTED = range(4)
CF = 4
YEARS = 16
KEY_KEY, KEY_SEQ, KEY_REASON, KEY_KIND = range(4)
KF = 4

# --- block offers, auctions, auction bids (slot tables; a free row has id 0) ---------------
BO_ID, BO_ACCOUNT, BO_INST, BO_SIDE, BO_PRICE, BO_QTY, BO_COUNTERPARTY = range(7)
BOF = 8
(AU_ID, AU_SELLER, AU_INST, AU_QTY, AU_STATE, AU_FLOOR, AU_CAP, AU_CLEARING, AU_FLOOR_RULE,
 AU_START, AU_END, AU_BIDS) = range(12)  # fmt: skip
AUF = 12
BID_ID, BID_AUCTION, BID_ACCOUNT, BID_PRICE, BID_QTY, BID_ARRIVAL = range(6)
BIDF = 6

# --- level columns ------------------------------------------------------------------------
L_HEAD, L_TAIL, L_QTY, L_COUNT = range(4)
LF = 4

# --- codes (mirror engine.core.schema; plain ints so the kernel needs no Python objects) --------
BUY, SELL = 1, 2
LIMIT, MARKET, POST_ONLY, HIT_QUOTE = 1, 2, 3, 4
DAY, GTC, IOC, FOK = 1, 2, 3, 4
STP_INCOMING, STP_RESTING, STP_BOTH = 1, 2, 3
CLOSED, OPEN, HALTED = 0, 1, 2
(R_UNKNOWN_INSTRUMENT, R_SESSION_CLOSED, R_HALTED, R_UNKNOWN_ACCOUNT, R_ORDER_TYPE, R_TIF,
 R_QUANTITY, R_OFF_LOT, R_OFF_TICK, R_OUT_OF_BAND, R_ORDER_ID, R_DUPLICATE, R_BOOK_FULL,
 R_WOULD_TRADE, R_UNKNOWN_ORDER, R_NOT_OWNER, R_ALREADY_OPEN, R_NOT_OPEN, R_NOT_HALTED,
 R_TRADING_DATE, R_MAY_NOT_TRADE, R_ACCOUNT_FROZEN, R_NO_ALLOWANCES, R_NO_CASH, R_INVALID_KEY,
 R_REGISTRY_DISABLED, R_INVALID_AMOUNT, R_ACCOUNT_EXISTS, R_INVALID_KIND, R_NOT_FROZEN,
 R_NOT_COMPLIANCE, R_INVALID_YEAR, R_YEAR_CLOSED, R_INVALID_GWP, R_NOT_ELIGIBLE, R_OFFSET_LIMIT,
 R_REGISTRY_FULL, R_FEE_ACCOUNT, R_MODE_NOT_ALLOWED, R_MODE_NOT_IN_PHASE, R_QUOTE_NOT_FOUND,
 R_QUOTE_BEYOND_LEVELS, R_QUOTE_OWN, R_UNKNOWN_BLOCK, R_BLOCK_TERMS, R_NOT_COUNTERPARTY,
 R_INVALID_COUNTERPARTY, R_UNKNOWN_AUCTION, R_AUCTION_STATE, R_AUCTION_TERMS,
 R_SELLER_BID, R_INVALID_PHASE) = range(1, 53)  # fmt: skip
MODE_CONTINUOUS, MODE_HIT_QUOTE, MODE_BLOCK, MODE_AUCTION = 1, 2, 4, 8
FLOOR_CLOSE, FLOOR_MINUS_BAND = 1, 2
CLEAR_UNIFORM, CLEAR_PAY_AS_BID = 1, 2
AUCTION_APPLIED, AUCTION_BIDDING = 1, 2
COMPLIANCE, INVESTOR, AUTHORITY, FEE = 1, 2, 3, 4
GWP_CF4 = (0, 7_390, 6_630, 7_380)  # by GwpVersion code: AR4 1, AR5 2, AR6 3
GWP_C2F6 = (0, 12_200, 11_100, 12_400)
QTY_MAX_T = 1_000_000_000_000
CASH_MAX_FEN = 10**16
CASH_TOTAL_MAX_FEN = 10**18
OBLIGATION_MAX_T = 10**10
C_REQUESTED, C_IOC, C_FOK, C_STP, C_MASS, C_SESSION_END, C_PHASE_END = range(1, 8)
K_SUBMIT, K_CANCEL, K_MODIFY, K_MASS_CANCEL = 1, 2, 3, 4
K_OPEN_SESSION, K_CLOSE_SESSION, K_HALT, K_RESUME, K_SET_PHASE = 10, 11, 12, 13, 14
(K_BLOCK_OFFER, K_BLOCK_ACCEPT, K_BLOCK_CANCEL, K_AUCTION_APPLY, K_AUCTION_ANNOUNCE,
 K_AUCTION_BID, K_AUCTION_CLEAR, K_AUCTION_CANCEL) = range(40, 48)  # fmt: skip
EV_ACCEPTED, EV_REJECTED, EV_TRADE, EV_CANCELLED, EV_MODIFIED = 1, 2, 3, 4, 5
EV_CANCEL_REJECTED, EV_MODIFY_REJECTED, EV_SESSION_OPENED, EV_SESSION_CLOSED = 6, 7, 8, 9
EV_HALTED, EV_RESUMED, EV_COMMAND_REJECTED, EV_MASS_CANCELLED = 10, 11, 12, 13
EV_PHASE_CHANGED, EV_MODE_VOLUMES, EV_COMPOSITE = 14, 15, 16
(EV_BLOCK_POSTED, EV_BLOCK_REJECTED, EV_BLOCK_TRADE, EV_BLOCK_CANCELLED, EV_AUCTION_APPLIED,
 EV_AUCTION_ANNOUNCED, EV_BID_ACCEPTED, EV_AUCTION_REJECTED, EV_AUCTION_TRADE,
 EV_BID_RELEASED, EV_AUCTION_CLEARED, EV_AUCTION_CANCELLED) = range(40, 52)  # fmt: skip
(K_OPEN_ACCOUNT, K_DEPOSIT, K_WITHDRAW, K_ISSUE, K_CLAW_BACK, K_TRANSFER, K_FREEZE, K_UNFREEZE,
 K_FREEZE_ACCOUNT, K_UNFREEZE_ACCOUNT, K_CANCEL_ALLOWANCES, K_REPORT, K_SURRENDER,
 K_CLOSE_YEAR) = range(20, 34)  # fmt: skip
(EV_ACCOUNT_OPENED, EV_CASH_DEPOSITED, EV_CASH_WITHDRAWN, EV_ISSUED, EV_CLAWED_BACK,
 EV_TRANSFERRED, EV_FROZEN, EV_UNFROZEN, EV_ACCOUNT_FROZEN, EV_ACCOUNT_UNFROZEN,
 EV_CANCELLED_ALLOWANCES, EV_EMISSIONS, EV_SURRENDERED, EV_COMPLIANCE, EV_YEAR_CLOSED,
 EV_DUPLICATE, EV_REGISTRY_REJECTED) = range(20, 37)  # fmt: skip
INSTRUMENT_ALL = -1

EVENTS_RESERVE = 16
"""Events a command may emit beyond one per resting order, block offer and auction bid (plus
two per instrument: a close reports SessionClosed and SessionModeVolumes)."""


def _power_of_two_above(count: int) -> int:
    size = 16
    while size < 2 * count:
        size *= 2
    return size


def state_size(
    n_inst: int,
    cap: int,
    ladder: int,
    accounts: int,
    keys: int,
    block_offers: int = 1,
    auctions: int = 1,
    bids: int = 1,
) -> tuple[int, dict[int, int]]:
    """Words needed for a state array, and the header values describing its layout."""
    hcap = _power_of_two_above(cap)
    kcap = _power_of_two_above(keys)
    nb = (ladder + 63) >> 6
    ns = (ladder + 4095) >> 12
    header = {M_N_INST: n_inst, M_CAP: cap, M_LADDER: ladder, M_HCAP: hcap, M_NB: nb, M_NS: ns,
              M_N_ACCOUNTS: accounts, M_KEYS_CAP: kcap, M_KEYS_LIMIT: keys,
              M_BLOCK_CAP: block_offers, M_AUCTIONS_CAP: auctions, M_BIDS_CAP: bids,
              M_NEXT_ARRIVAL: 1}  # fmt: skip
    offset = META_LEN
    for key, words in (
        (M_OFF_INST, n_inst * IF),
        (M_OFF_ORDERS, cap * OF),
        (M_OFF_HASH, 2 * hcap),
        (M_OFF_LEVELS, n_inst * 2 * ladder * LF),
        (M_OFF_BLOCKS, n_inst * 2 * nb),
        (M_OFF_SUPERS, n_inst * 2 * ns),
        (M_OFF_ACC, accounts * AF),
        (M_OFF_HOLD, accounts * n_inst * HF),
        (M_OFF_COMP, YEARS * accounts * CF),
        (M_OFF_KEYS, kcap * KF),
        (M_OFF_BLOCK, block_offers * BOF),
        (M_OFF_AUCTIONS, auctions * AUF),
        (M_OFF_BIDS, bids * BIDF),
    ):
        header[key] = offset
        offset += words
    return offset, header
