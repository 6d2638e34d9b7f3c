"""Block trades and one-way auctions: docs/TRADING_MODES.md in plain, obviously correct Python.

Theory of operation
-------------------
The reference engine (``engine.core.reference.engine``) owns the order books, the sessions and their
phases; this module owns the two trading modes that live outside the order book.

* **Block offers** are a dictionary ``offers`` (offer id -> :class:`BlockOffer`).  An offer locks
  its need in the ledger when it is posted (exactly as an order of the same side, quantity and
  price would) and releases it when it is cancelled, expires, or is accepted - then the
  acceptor locks its own need and the trade settles through the ledger's ``settle``, so fees and
  T+1 work as for an order fill.
* **Auctions** are a dictionary ``auctions`` (auction id -> :class:`Auction`), each holding its
  sealed bids in a list in arrival order; ``bid_auctions`` maps every live bid id to its auction
  (bid ids are one id space across auctions).  The seller's lot is locked when the auction is
  applied for; each bid locks its need when it is accepted.  Clearing ranks the bids (price,
  then arrival: a stable sort of the arrival list), fills the lot down the ranking and settles
  each fill, then releases what is left.
* :class:`ModeVolumes` counts each instrument's block and auction business of the session; the
  engine reports and resets them at the close (``SessionModeVolumes``).

Every handler runs the documented checks in their fixed order and only then changes state, as
the engine's order handlers do; a refusal is one ``BlockCommandRejected`` /
``AuctionCommandRejected`` event.  With the registry off every ledger call is skipped.

Readings of docs/TRADING_MODES.md where it is silent (the compiled engine must agree):

* A refusal echoes the command's account, side, price and quantity as given (as
  ``OrderRejected`` does).
* The engine never reads a clock, so an auction's window is published, not enforced: bids are
  taken from the announcement until the operator clears or cancels the auction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from engine.core import limits
from engine.core import schema as s
from engine.core import snapshot as snap
from engine.core.market import band_edges
from engine.core.reference.ledger import OpenOrder
from engine.core.schema import CancelReason as CR
from engine.core.schema import RejectReason as RR

if TYPE_CHECKING:
    from engine.core.reference.book import Book
    from engine.core.reference.engine import ReferenceEngine, _Out

BUY, SELL = s.Side.BUY, s.Side.SELL
OPEN, CLOSED, HALTED = s.SessionState.OPEN, s.SessionState.CLOSED, s.SessionState.HALTED
APPLIED, BIDDING = s.AuctionState.APPLIED, s.AuctionState.BIDDING
BLOCK, AUCTION = int(s.TradingMode.BLOCK), int(s.TradingMode.AUCTION)
_SIDES = frozenset(int(v) for v in s.Side)
_FLOOR_RULES = frozenset(int(v) for v in s.FloorRule)
_CLEARING_RULES = frozenset(int(v) for v in s.ClearingRule)
NO_COUNTERPARTY = -1
"""``counterparty`` of a block offer open to every account."""

_T_OFFER, _T_ACCEPT, _T_CANCEL_OFFER = 40, 41, 42
_T_APPLY, _T_ANNOUNCE, _T_BID, _T_CLEAR, _T_CANCEL_AUCTION = 43, 44, 45, 46, 47


def _opposite(side: int) -> s.Side:
    return SELL if side == BUY else BUY


class BlockOffer:
    """A posted block offer; its need stays locked while it is live."""

    __slots__ = (
        "offer_id",
        "account",
        "instrument",
        "side",
        "price_ticks",
        "qty_t",
        "counterparty",
    )

    def __init__(self, offer_id, account, instrument, side, price_ticks, qty_t, counterparty):
        self.offer_id, self.account, self.instrument = offer_id, account, instrument
        self.side, self.price_ticks, self.qty_t = s.Side(side), price_ticks, qty_t
        self.counterparty = counterparty

    def words(self) -> list[int]:
        return [
            self.offer_id,
            self.account,
            self.instrument,
            self.side,
            self.price_ticks,
            self.qty_t,
            self.counterparty,
        ]


class Bid:
    """A sealed bid of an auction; its need (``qty_t`` at ``price_ticks``) stays locked."""

    __slots__ = ("bid_id", "account", "price_ticks", "qty_t")

    def __init__(self, bid_id: int, account: int, price_ticks: int, qty_t: int) -> None:
        self.bid_id, self.account = bid_id, account
        self.price_ticks, self.qty_t = price_ticks, qty_t

    def words(self) -> list[int]:
        return [self.bid_id, self.account, self.price_ticks, self.qty_t]


class Auction:
    """An auction that has not cleared: the seller's locked lot, its terms once announced (0
    while ``APPLIED``) and its bids in arrival order."""

    __slots__ = (
        "auction_id",
        "seller",
        "instrument",
        "qty_t",
        "state",
        "floor_ticks",
        "cap_ticks",
        "clearing",
        "floor_rule",
        "window_start_ns",
        "window_end_ns",
        "bids",
    )

    def __init__(self, auction_id: int, seller: int, instrument: int, qty_t: int) -> None:
        self.auction_id, self.seller, self.instrument, self.qty_t = (
            auction_id,
            seller,
            instrument,
            qty_t,
        )
        self.state = APPLIED
        self.floor_ticks = self.cap_ticks = 0
        self.clearing: int = 0
        self.floor_rule: int = 0
        self.window_start_ns = self.window_end_ns = 0
        self.bids: list[Bid] = []

    def terms(self) -> list[int]:
        return [
            self.floor_ticks,
            self.cap_ticks,
            self.clearing,
            self.floor_rule,
            self.window_start_ns,
            self.window_end_ns,
        ]

    def words(self) -> list[int]:
        """The auction's words of the state hash, its bids included."""
        words = [
            self.auction_id,
            self.seller,
            self.instrument,
            self.qty_t,
            self.state,
            *self.terms(),
            len(self.bids),
        ]
        for bid in self.bids:
            words += bid.words()
        return words


class ModeVolumes:
    """One instrument's block and auction business since its last close."""

    __slots__ = (
        "block_volume_t",
        "block_value_fen",
        "block_trades",
        "auction_volume_t",
        "auction_value_fen",
        "auction_trades",
    )

    def __init__(self, *words: int) -> None:
        (
            self.block_volume_t,
            self.block_value_fen,
            self.block_trades,
            self.auction_volume_t,
            self.auction_value_fen,
            self.auction_trades,
        ) = words or (0,) * 6

    def words(self) -> tuple[int, int, int, int, int, int]:
        return (
            self.block_volume_t,
            self.block_value_fen,
            self.block_trades,
            self.auction_volume_t,
            self.auction_value_fen,
            self.auction_trades,
        )


class TradingModes:
    """Block offers, auctions and the session's mode volumes of one reference engine.

    Parameters
    ----------
    engine : ReferenceEngine
        The engine whose books, ledger and trade-id sequence the modes share.
    """

    def __init__(self, engine: ReferenceEngine) -> None:
        self.engine = engine
        self.capacity = engine.market.capacity
        self.offers: dict[int, BlockOffer] = {}
        self.auctions: dict[int, Auction] = {}
        self.bid_auctions: dict[int, int] = {}
        """Live bid id -> the id of its auction."""
        self.volumes = [ModeVolumes() for _ in engine.market.instruments]
        self.handlers: dict[type, Callable[..., None]] = {
            s.SubmitBlockOffer: self._submit_offer,
            s.AcceptBlockOffer: self._accept_offer,
            s.CancelBlockOffer: self._cancel_offer,
            s.ApplyAuction: self._apply,
            s.AnnounceAuction: self._announce,
            s.SubmitAuctionBid: self._bid,
            s.ClearAuction: self._clear,
            s.CancelAuction: self._cancel_auction,
        }

    # -- shared helpers ------------------------------------------------------------------------
    def _known_account(self, account: int) -> bool:
        return self.engine._account_valid(account)

    def _ledger_reason(self, account: int, ins: int, side: int, qty_t: int, price: int) -> RR:
        """Checks 12a-12c of docs/LEDGER.md (``NONE`` with the registry off)."""
        if not self.engine._registry:
            return RR.NONE
        return self.engine._ledger.order_reason(account, ins, side, qty_t, price)

    def _lock(self, account: int, ins: int, side: int, qty_t: int, price: int) -> None:
        if self.engine._registry:
            self.engine._ledger.lock(account, ins, side, qty_t, price)

    def _unlock(self, account: int, ins: int, side: int, qty_t: int, price: int) -> None:
        if self.engine._registry:
            self.engine._ledger.unlock(account, ins, side, qty_t, price)

    def _settle(self, ins, buyer, buy_qty_t, buy_lock_price, seller, price, qty_t) -> None:
        """Delivery versus payment, exactly as an order fill (the buyer's lock is that of
        ``buy_qty_t`` at ``buy_lock_price``)."""
        if self.engine._registry:
            self.engine._ledger.settle(ins, buyer, buy_qty_t, buy_lock_price, seller, price, qty_t)

    def _symbol(self, ins: int) -> str:
        return self.engine._books[ins].symbol

    # -- block offers --------------------------------------------------------------------------
    def _offer_reason(self, c: s.SubmitBlockOffer, book: Book | None) -> RR:
        """The first failing check of SubmitBlockOffer, or ``NONE``."""
        if book is None:
            return RR.UNKNOWN_INSTRUMENT
        if book.state != OPEN:
            return RR.SESSION_CLOSED if book.state == CLOSED else RR.INSTRUMENT_HALTED
        if not self._known_account(c.account):
            return RR.UNKNOWN_ACCOUNT
        if c.side not in _SIDES:
            return RR.INVALID_ORDER_TYPE
        if not book.mode_bits & BLOCK:
            return RR.MODE_NOT_ALLOWED
        if not book.effective_modes() & BLOCK:
            return RR.MODE_NOT_IN_PHASE
        spec = book.spec
        if not spec.block_min_qty_t <= c.qty_t <= limits.QTY_MAX_T:
            return RR.INVALID_QUANTITY
        if c.qty_t % spec.lot_t:
            return RR.QUANTITY_OFF_LOT
        if c.price_ticks <= 0 or c.price_ticks % spec.tick_ticks:
            return RR.PRICE_OFF_TICK
        if not book.block_lower_ticks <= c.price_ticks <= book.block_upper_ticks:
            return RR.PRICE_OUT_OF_BAND
        if c.counterparty != NO_COUNTERPARTY and (
            not self._known_account(c.counterparty) or c.counterparty == c.account
        ):
            return RR.INVALID_COUNTERPARTY
        if c.offer_id <= 0:
            return RR.INVALID_ORDER_ID
        if c.offer_id in self.offers:
            return RR.DUPLICATE_ORDER_ID
        if len(self.offers) >= self.capacity.block_offers:
            return RR.BOOK_FULL
        return self._ledger_reason(c.account, book.index, c.side, c.qty_t, c.price_ticks)

    def _submit_offer(self, c: s.SubmitBlockOffer, out: _Out) -> None:
        book = self.engine._by_symbol.get(c.instrument)
        reason = self._offer_reason(c, book)
        if reason != RR.NONE:
            out.events.append(
                s.BlockCommandRejected(
                    out.seq,
                    out.ts_ns,
                    _T_OFFER,
                    c.offer_id,
                    c.account,
                    self.engine._echo(c.instrument),
                    int(c.side),
                    c.price_ticks,
                    c.qty_t,
                    reason,
                )
            )
            return
        assert book is not None
        offer = BlockOffer(
            c.offer_id, c.account, book.index, c.side, c.price_ticks, c.qty_t, c.counterparty
        )
        self._lock(offer.account, offer.instrument, offer.side, offer.qty_t, offer.price_ticks)
        self.offers[offer.offer_id] = offer
        out.events.append(
            s.BlockOfferPosted(
                out.seq,
                out.ts_ns,
                offer.offer_id,
                offer.account,
                book.symbol,
                offer.side,
                offer.price_ticks,
                offer.qty_t,
                offer.counterparty,
            )
        )

    def _accept_reason(self, c: s.AcceptBlockOffer, offer: BlockOffer | None) -> RR:
        if offer is None:
            return RR.UNKNOWN_BLOCK_OFFER
        if self.engine._books[offer.instrument].state == HALTED:
            return RR.INSTRUMENT_HALTED
        if not self._known_account(c.account):
            return RR.UNKNOWN_ACCOUNT
        if c.account == offer.account or offer.counterparty not in (NO_COUNTERPARTY, c.account):
            return RR.NOT_COUNTERPARTY
        if (c.price_ticks, c.qty_t) != (offer.price_ticks, offer.qty_t):
            return RR.BLOCK_TERMS_MISMATCH
        return self._ledger_reason(
            c.account, offer.instrument, _opposite(offer.side), offer.qty_t, offer.price_ticks
        )

    def _block_rejected(
        self,
        out: _Out,
        tag: int,
        offer: BlockOffer | None,
        offer_id: int,
        account: int,
        price: int,
        qty: int,
        reason: RR,
    ) -> None:
        symbol = "?" if offer is None else self._symbol(offer.instrument)
        out.events.append(
            s.BlockCommandRejected(
                out.seq,
                out.ts_ns,
                tag,
                offer_id,
                account,
                symbol,
                0,
                price,
                qty,
                reason,
            )
        )

    def _accept_offer(self, c: s.AcceptBlockOffer, out: _Out) -> None:
        offer = self.offers.get(c.offer_id)
        reason = self._accept_reason(c, offer)
        if reason != RR.NONE:
            self._block_rejected(
                out, _T_ACCEPT, offer, c.offer_id, c.account, c.price_ticks, c.qty_t, reason
            )
            return
        assert offer is not None
        ins, price, qty = offer.instrument, offer.price_ticks, offer.qty_t
        acceptor_side = _opposite(offer.side)
        self._lock(c.account, ins, acceptor_side, qty, price)
        if offer.side == BUY:
            buyer, seller = offer.account, c.account
        else:
            buyer, seller = c.account, offer.account
        self._settle(ins, buyer, qty, price, seller, price, qty)
        del self.offers[offer.offer_id]
        volumes = self.volumes[ins]
        volumes.block_volume_t += qty
        volumes.block_value_fen += price * qty
        volumes.block_trades += 1
        out.events.append(
            s.BlockTradeExecuted(
                out.seq,
                out.ts_ns,
                self.engine._new_trade_id(),
                self._symbol(ins),
                price,
                qty,
                offer.offer_id,
                offer.side,
                offer.account,
                c.account,
            )
        )

    def _cancel_offer(self, c: s.CancelBlockOffer, out: _Out) -> None:
        offer = self.offers.get(c.offer_id)
        if offer is None or offer.account != c.account:
            reason = RR.UNKNOWN_BLOCK_OFFER if offer is None else RR.NOT_ORDER_OWNER
            self._block_rejected(out, _T_CANCEL_OFFER, offer, c.offer_id, c.account, 0, 0, reason)
            return
        self._withdraw_offer(offer, CR.REQUESTED, out)

    def _withdraw_offer(self, offer: BlockOffer, reason: CR, out: _Out) -> None:
        del self.offers[offer.offer_id]
        self._unlock(offer.account, offer.instrument, offer.side, offer.qty_t, offer.price_ticks)
        out.events.append(
            s.BlockOfferCancelled(
                out.seq,
                out.ts_ns,
                offer.offer_id,
                offer.account,
                self._symbol(offer.instrument),
                offer.side,
                offer.price_ticks,
                offer.qty_t,
                reason,
            )
        )

    def expire_offers(self, ins: int, reason: CR, out: _Out) -> None:
        """Cancel every block offer of instrument ``ins`` (session end, phase end), ascending
        offer id."""
        for offer_id in sorted(self.offers):
            offer = self.offers[offer_id]
            if offer.instrument == ins:
                self._withdraw_offer(offer, reason, out)

    # -- auctions: apply, announce, bid --------------------------------------------------------
    def _auction_rejected(
        self,
        out: _Out,
        tag: int,
        auction_id: int,
        bid_id: int,
        account: int,
        symbol: str,
        price: int,
        qty: int,
        reason: RR,
    ) -> None:
        out.events.append(
            s.AuctionCommandRejected(
                out.seq,
                out.ts_ns,
                tag,
                auction_id,
                bid_id,
                account,
                symbol,
                price,
                qty,
                reason,
            )
        )

    def _auction_symbol(self, auction: Auction | None) -> str:
        return "?" if auction is None else self._symbol(auction.instrument)

    def _apply_reason(self, c: s.ApplyAuction, book: Book | None) -> RR:
        if book is None:
            return RR.UNKNOWN_INSTRUMENT
        if not self._known_account(c.account):
            return RR.UNKNOWN_ACCOUNT
        spec = book.spec
        if not spec.mode_bits & AUCTION:
            return RR.MODE_NOT_ALLOWED
        if not spec.auction_min_qty_t <= c.qty_t <= limits.QTY_MAX_T:
            return RR.INVALID_QUANTITY
        if c.qty_t % spec.lot_t:
            return RR.QUANTITY_OFF_LOT
        if c.auction_id <= 0:
            return RR.INVALID_ORDER_ID
        if c.auction_id in self.auctions:
            return RR.DUPLICATE_ORDER_ID
        if len(self.auctions) >= self.capacity.auctions:
            return RR.BOOK_FULL
        return self._ledger_reason(c.account, book.index, SELL, c.qty_t, 0)

    def _apply(self, c: s.ApplyAuction, out: _Out) -> None:
        book = self.engine._by_symbol.get(c.instrument)
        reason = self._apply_reason(c, book)
        if reason != RR.NONE:
            self._auction_rejected(
                out,
                _T_APPLY,
                c.auction_id,
                0,
                c.account,
                self.engine._echo(c.instrument),
                0,
                c.qty_t,
                reason,
            )
            return
        assert book is not None
        auction = Auction(c.auction_id, c.account, book.index, c.qty_t)
        self._lock(auction.seller, auction.instrument, SELL, auction.qty_t, 0)
        self.auctions[auction.auction_id] = auction
        out.events.append(
            s.AuctionApplied(
                out.seq, out.ts_ns, auction.auction_id, auction.seller, book.symbol, auction.qty_t
            )
        )

    def _announce(self, c: s.AnnounceAuction, out: _Out) -> None:
        auction = self.auctions.get(c.auction_id)
        if auction is None:
            reason = RR.UNKNOWN_AUCTION
        elif auction.state != APPLIED:
            reason = RR.AUCTION_STATE
        elif (
            c.floor_rule not in _FLOOR_RULES
            or c.clearing not in _CLEARING_RULES
            or c.window_end_ns < c.window_start_ns
        ):
            reason = RR.INVALID_AUCTION_TERMS
        else:
            reason = RR.NONE
        if reason != RR.NONE:
            self._auction_rejected(
                out, _T_ANNOUNCE, c.auction_id, 0, 0, self._auction_symbol(auction), 0, 0, reason
            )
            return
        assert auction is not None
        book = self.engine._books[auction.instrument]
        reference = book.reference_ticks
        lower, upper = band_edges(reference, book.spec.auction_band_bps, book.spec.tick_ticks)
        floor_rule, clearing = s.FloorRule(c.floor_rule), s.ClearingRule(c.clearing)
        auction.state = BIDDING
        auction.floor_ticks = reference if floor_rule == s.FloorRule.PREVIOUS_CLOSE else lower
        auction.cap_ticks = upper
        auction.floor_rule, auction.clearing = floor_rule, clearing
        auction.window_start_ns, auction.window_end_ns = c.window_start_ns, c.window_end_ns
        out.events.append(
            s.AuctionAnnounced(
                out.seq,
                out.ts_ns,
                auction.auction_id,
                auction.seller,
                book.symbol,
                auction.qty_t,
                auction.floor_ticks,
                auction.cap_ticks,
                floor_rule,
                clearing,
                c.window_start_ns,
                c.window_end_ns,
            )
        )

    def _bid_reason(self, c: s.SubmitAuctionBid, auction: Auction | None) -> RR:
        if auction is None:
            return RR.UNKNOWN_AUCTION
        if auction.state != BIDDING:
            return RR.AUCTION_STATE
        if not self._known_account(c.account):
            return RR.UNKNOWN_ACCOUNT
        if c.account == auction.seller:
            return RR.SELLER_MAY_NOT_BID
        spec = self.engine._books[auction.instrument].spec
        if not spec.lot_t <= c.qty_t <= auction.qty_t:
            return RR.INVALID_QUANTITY
        if c.qty_t % spec.lot_t:
            return RR.QUANTITY_OFF_LOT
        if c.price_ticks <= 0 or c.price_ticks % spec.tick_ticks:
            return RR.PRICE_OFF_TICK
        if not auction.floor_ticks <= c.price_ticks <= auction.cap_ticks:
            return RR.PRICE_OUT_OF_BAND
        if c.bid_id <= 0:
            return RR.INVALID_ORDER_ID
        if c.bid_id in self.bid_auctions:
            return RR.DUPLICATE_ORDER_ID
        if len(self.bid_auctions) >= self.capacity.auction_bids:
            return RR.BOOK_FULL
        return self._ledger_reason(c.account, auction.instrument, BUY, c.qty_t, c.price_ticks)

    def _bid(self, c: s.SubmitAuctionBid, out: _Out) -> None:
        auction = self.auctions.get(c.auction_id)
        reason = self._bid_reason(c, auction)
        if reason != RR.NONE:
            self._auction_rejected(
                out,
                _T_BID,
                c.auction_id,
                c.bid_id,
                c.account,
                self._auction_symbol(auction),
                c.price_ticks,
                c.qty_t,
                reason,
            )
            return
        assert auction is not None
        bid = Bid(c.bid_id, c.account, c.price_ticks, c.qty_t)
        self._lock(bid.account, auction.instrument, BUY, bid.qty_t, bid.price_ticks)
        auction.bids.append(bid)
        self.bid_auctions[bid.bid_id] = auction.auction_id
        out.events.append(
            s.AuctionBidAccepted(
                out.seq,
                out.ts_ns,
                bid.bid_id,
                auction.auction_id,
                bid.account,
                self._symbol(auction.instrument),
                bid.price_ticks,
                bid.qty_t,
            )
        )

    # -- auctions: clear, cancel ---------------------------------------------------------------
    def _operator_refusal(self, auction: Auction | None, need_bidding: bool) -> RR:
        if auction is None:
            return RR.UNKNOWN_AUCTION
        if need_bidding and auction.state != BIDDING:
            return RR.AUCTION_STATE
        return RR.NONE

    def _clear(self, c: s.ClearAuction, out: _Out) -> None:
        auction = self.auctions.get(c.auction_id)
        reason = self._operator_refusal(auction, need_bidding=True)
        if reason != RR.NONE:
            self._auction_rejected(
                out, _T_CLEAR, c.auction_id, 0, 0, self._auction_symbol(auction), 0, 0, reason
            )
            return
        assert auction is not None
        ranking = sorted(auction.bids, key=lambda bid: -bid.price_ticks)  # stable: arrival order
        fills, remaining = [], auction.qty_t
        for bid in ranking:
            fill = min(bid.qty_t, remaining)
            remaining -= fill
            fills.append((bid, fill))
        accepted = [bid for bid, fill in fills if fill > 0]
        clearing_price = accepted[-1].price_ticks if accepted else 0
        uniform = auction.clearing == s.ClearingRule.UNIFORM
        value = 0
        for bid, fill in fills:
            if fill > 0:
                price = clearing_price if uniform else bid.price_ticks
                value += price * fill
                self._auction_fill(auction, bid, price, fill, out)
            else:
                self._release_bid(auction, bid, out)
        sold = auction.qty_t - remaining
        self._unlock(auction.seller, auction.instrument, SELL, remaining, 0)
        volumes = self.volumes[auction.instrument]
        volumes.auction_volume_t += sold
        volumes.auction_value_fen += value
        volumes.auction_trades += len(accepted)
        self._remove_auction(auction)
        out.events.append(
            s.AuctionCleared(
                out.seq,
                out.ts_ns,
                auction.auction_id,
                auction.seller,
                self._symbol(auction.instrument),
                s.ClearingRule(auction.clearing),
                clearing_price,
                sold,
                remaining,
                value,
                len(accepted),
                len(auction.bids),
            )
        )

    def _auction_fill(self, auction: Auction, bid: Bid, price: int, fill: int, out: _Out) -> None:
        """One accepted bid: settle ``fill`` at ``price``, then release the unfilled part."""
        ins = auction.instrument
        self._settle(ins, bid.account, bid.qty_t, bid.price_ticks, auction.seller, price, fill)
        self._unlock(bid.account, ins, BUY, bid.qty_t - fill, bid.price_ticks)
        out.events.append(
            s.AuctionTrade(
                out.seq,
                out.ts_ns,
                self.engine._new_trade_id(),
                auction.auction_id,
                self._symbol(ins),
                price,
                fill,
                bid.bid_id,
                bid.account,
                auction.seller,
                bid.qty_t - fill,
            )
        )

    def _release_bid(self, auction: Auction, bid: Bid, out: _Out) -> None:
        self._unlock(bid.account, auction.instrument, BUY, bid.qty_t, bid.price_ticks)
        out.events.append(
            s.AuctionBidReleased(
                out.seq,
                out.ts_ns,
                bid.bid_id,
                auction.auction_id,
                bid.account,
                self._symbol(auction.instrument),
                bid.price_ticks,
                bid.qty_t,
            )
        )

    def _remove_auction(self, auction: Auction) -> None:
        del self.auctions[auction.auction_id]
        for bid in auction.bids:
            del self.bid_auctions[bid.bid_id]

    def _cancel_auction(self, c: s.CancelAuction, out: _Out) -> None:
        auction = self.auctions.get(c.auction_id)
        reason = self._operator_refusal(auction, need_bidding=False)
        if reason != RR.NONE:
            self._auction_rejected(out, _T_CANCEL_AUCTION, c.auction_id, 0, 0, "?", 0, 0, reason)
            return
        assert auction is not None
        for bid in auction.bids:
            self._release_bid(auction, bid, out)
        self._unlock(auction.seller, auction.instrument, SELL, auction.qty_t, 0)
        self._remove_auction(auction)
        out.events.append(
            s.AuctionCancelled(
                out.seq,
                out.ts_ns,
                auction.auction_id,
                auction.seller,
                self._symbol(auction.instrument),
                auction.qty_t,
                len(auction.bids),
            )
        )

    # -- the close -----------------------------------------------------------------------------
    def report_volumes(self, book: Book, out: _Out) -> None:
        """``SessionModeVolumes`` of the session that just closed; the counters restart."""
        volumes = self.volumes[book.index]
        out.events.append(
            s.SessionModeVolumes(
                out.seq, out.ts_ns, book.symbol, book.trading_date, *volumes.words()
            )
        )
        self.volumes[book.index] = ModeVolumes()

    # -- queries -------------------------------------------------------------------------------
    def block_offers(self, ins: int | None) -> list[s.BlockOffer]:
        return [
            s.BlockOffer(
                o.offer_id,
                o.account,
                self._symbol(o.instrument),
                o.side,
                o.price_ticks,
                o.qty_t,
                o.counterparty,
            )
            for _, o in sorted(self.offers.items())
            if ins is None or o.instrument == ins
        ]

    def auction_statuses(self) -> list[s.AuctionStatus]:
        return [
            s.AuctionStatus(
                a.auction_id,
                a.seller,
                self._symbol(a.instrument),
                a.qty_t,
                a.state,
                a.floor_ticks,
                a.cap_ticks,
                int(a.floor_rule),
                int(a.clearing),
                a.window_start_ns,
                a.window_end_ns,
                len(a.bids),
            )
            for _, a in sorted(self.auctions.items())
        ]

    # -- state hash, snapshots, locks ------------------------------------------------------------
    def hash_words(self) -> list[int]:
        """Words 2 and 3 of docs/TRADING_MODES.md "State hash": offers, then auctions."""
        words = [len(self.offers)]
        for offer_id in sorted(self.offers):
            words += self.offers[offer_id].words()
        words.append(len(self.auctions))
        for auction_id in sorted(self.auctions):
            words += self.auctions[auction_id].words()
        return words

    def export(self, phases: list[int]) -> snap.ModesSnapshot:
        instruments = [(phase, *v.words()) for phase, v in zip(phases, self.volumes, strict=True)]
        offers = [snap.BlockOfferSnapshot(*self.offers[i].words()) for i in sorted(self.offers)]
        auctions = [
            snap.AuctionSnapshot(  # type: ignore[call-arg]  # *a.terms(): six ints
                a.auction_id,
                a.seller,
                a.instrument,
                a.qty_t,
                a.state,
                *a.terms(),  # type: ignore[arg-type]
                [snap.BidSnapshot(*bid.words()) for bid in a.bids],
            )
            for _, a in sorted(self.auctions.items())
        ]
        return snap.ModesSnapshot(instruments, offers, auctions)

    def restore(self, saved: snap.ModesSnapshot) -> None:
        """Load a snapshot's offers, auctions and volumes (phases are the engine's).  Raises
        ValueError on codes that do not exist."""
        self.volumes = [ModeVolumes(*row[1:]) for row in saved.instruments]
        for o in saved.block_offers:
            self.offers[o.offer_id] = BlockOffer(
                o.offer_id,
                o.account,
                o.instrument,
                o.side,
                o.price_ticks,
                o.qty_t,
                o.counterparty,
            )
        for a in saved.auctions:
            auction = Auction(a.auction_id, a.seller, a.instrument, a.qty_t)
            auction.state = s.AuctionState(a.state)
            auction.floor_ticks, auction.cap_ticks = a.floor_price_ticks, a.cap_price_ticks
            auction.clearing, auction.floor_rule = a.clearing, a.floor_rule
            if auction.state == BIDDING:
                auction.clearing = s.ClearingRule(a.clearing)
                auction.floor_rule = s.FloorRule(a.floor_rule)
            auction.window_start_ns, auction.window_end_ns = a.window_start_ns, a.window_end_ns
            for b in a.bids:
                if b.bid_id in self.bid_auctions:
                    raise ValueError(f"bid id {b.bid_id} appears twice")
                auction.bids.append(Bid(b.bid_id, b.account, b.price_ticks, b.qty_t))
                self.bid_auctions[b.bid_id] = a.auction_id
            self.auctions[a.auction_id] = auction

    def locks(self) -> Iterator[OpenOrder]:
        """Everything of the modes that holds a ledger lock: block offers (their need), bids
        (buys of their quantity at their price) and auction lots (sells)."""
        for o in self.offers.values():
            yield OpenOrder(o.account, o.instrument, o.side, o.qty_t, o.price_ticks)
        for a in self.auctions.values():
            yield OpenOrder(a.seller, a.instrument, SELL, a.qty_t, 0)
            for bid in a.bids:
                yield OpenOrder(bid.account, a.instrument, BUY, bid.qty_t, bid.price_ticks)

    # -- invariants ----------------------------------------------------------------------------
    def check(self) -> None:
        """Raise AssertionError unless the offers, auctions and volumes are consistent."""
        for ins, v in enumerate(self.volumes):
            words = v.words()
            assert min(words) >= 0, f"{self._symbol(ins)}: negative mode volumes {words}"
            for volume, trades in ((words[0], words[2]), (words[3], words[5])):
                assert volume >= trades, f"{self._symbol(ins)}: mode volume < trade count"
        assert len(self.offers) <= self.capacity.block_offers, "more block offers than capacity"
        for offer_id, offer in self.offers.items():
            assert offer.offer_id == offer_id > 0, f"block offer {offer_id} keyed wrongly"
            self._check_offer(offer)
        assert len(self.auctions) <= self.capacity.auctions, "more auctions than capacity"
        bids = {bid.bid_id: a.auction_id for a in self.auctions.values() for bid in a.bids}
        assert bids == self.bid_auctions, "bid index disagrees with the auctions' bids"
        assert sum(len(a.bids) for a in self.auctions.values()) == len(bids), "bid id twice"
        assert len(bids) <= self.capacity.auction_bids, "more auction bids than capacity"
        for auction_id, auction in self.auctions.items():
            assert auction.auction_id == auction_id > 0, f"auction {auction_id} keyed wrongly"
            self._check_auction(auction)

    def _check_offer(self, o: BlockOffer) -> None:
        where = f"block offer {o.offer_id}"
        book = self.engine._books[o.instrument]
        spec = book.spec
        assert book.state != CLOSED, f"{where}: its session is closed"
        assert book.phase_modes() & BLOCK, f"{where}: its phase allows no block trades"
        assert o.side in (BUY, SELL), f"{where}: side {o.side}"
        assert spec.block_min_qty_t <= o.qty_t <= limits.QTY_MAX_T, f"{where}: qty {o.qty_t}"
        assert o.qty_t % spec.lot_t == 0, f"{where}: off lot"
        assert o.price_ticks % spec.tick_ticks == 0, f"{where}: off tick"
        assert book.block_lower_ticks <= o.price_ticks <= book.block_upper_ticks, (
            f"{where}: price {o.price_ticks} outside the block band"
        )
        assert self._known_account(o.account), f"{where}: unknown account {o.account}"
        assert o.counterparty == NO_COUNTERPARTY or (
            self._known_account(o.counterparty) and o.counterparty != o.account
        ), f"{where}: counterparty {o.counterparty}"

    def _check_auction(self, a: Auction) -> None:
        where = f"auction {a.auction_id}"
        spec = self.engine._books[a.instrument].spec
        assert spec.mode_bits & AUCTION, f"{where}: the instrument offers no auctions"
        assert spec.auction_min_qty_t <= a.qty_t <= limits.QTY_MAX_T, f"{where}: lot {a.qty_t}"
        assert a.qty_t % spec.lot_t == 0, f"{where}: lot off the lot size"
        assert self._known_account(a.seller), f"{where}: unknown seller {a.seller}"
        if a.state == APPLIED:
            assert a.terms() == [0] * 6 and not a.bids, f"{where}: terms or bids before bidding"
            return
        assert a.state == BIDDING, f"{where}: state {a.state}"
        assert a.floor_rule in _FLOOR_RULES and a.clearing in _CLEARING_RULES, f"{where}: rules"
        assert 1 <= a.floor_ticks <= a.cap_ticks, f"{where}: floor {a.floor_ticks} > cap"
        assert a.window_start_ns <= a.window_end_ns, f"{where}: window ends before it starts"
        for bid in a.bids:
            assert bid.bid_id > 0, f"{where}: bid id {bid.bid_id}"
            assert bid.account != a.seller and self._known_account(bid.account), (
                f"{where}: bid {bid.bid_id} of account {bid.account}"
            )
            assert spec.lot_t <= bid.qty_t <= a.qty_t and bid.qty_t % spec.lot_t == 0, (
                f"{where}: bid {bid.bid_id} qty {bid.qty_t}"
            )
            assert bid.price_ticks % spec.tick_ticks == 0, f"{where}: bid {bid.bid_id} off tick"
            assert a.floor_ticks <= bid.price_ticks <= a.cap_ticks, (
                f"{where}: bid {bid.bid_id} price {bid.price_ticks} outside floor..cap"
            )
