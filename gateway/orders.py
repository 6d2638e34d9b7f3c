"""The gateway's memory of orders: client order ids, open orders, who may see what.

Theory of operation
-------------------
The gateway assigns every new order its engine order id: the sequence number the order's
``SubmitOrder`` command receives, claimed from the sequencer as the command is made
(``Sequencer.claim``; the submission checks the batch carries the claimed seqs).  Ids are
therefore positive, unique for the life of the data directory, and need no counter of their
own.

Each command the gateway submits carries an :class:`Annotation` in the log - who sent it, the
request id, the client order id, and whether the command named something its account may not
see - so everything this module knows is a function of the log:

* ``live[account]`` is the set of the account's live orders (resting, or in flight between
  the gateway and the engine): taken from the recovered engine's books at start-up, then
  kept current from the requests and the events.  Its size is the account's open-order count.
* ``by_client[account][client_order_id] -> order_id`` and ``client_of[order_id]`` cover the
  orders whose client order id is still *reserved*: every live order, and every order entered
  during the current trading day.  The trading day begins with the first ``OpenSession``
  command that names a later trading date than any before it; at that point the ids of the
  orders that have ended are forgotten (an order entered on an earlier day that ends later is
  forgotten as it ends).  So the memory held is bounded by the live orders plus one trading
  day's orders, not by the life of the data directory.  Recovery applies the same rule while
  it reads the log's annotations, and ends in the same state.
* ``offers`` and ``auctions``: the live block offers (account, counterparty) and auctions
  (seller, announced?), recorded as the gateway claims their ids and kept current from the
  events; they tell whether an account may know that an offer or auction exists.

A request that names an order, offer or auction its account may not see is still sequenced
(so that its answer, its timing and its position in the session's stream are those of a
request naming an id that does not exist), with ``hidden`` set in its annotation and no client
order id; ``gateway.reports`` then reports the engine's refusal of it as the refusal of an
unknown id.

Connections (for cancel-on-disconnect) are the only thing not recovered: they do not survive
a restart.

The maps hold only ints and strings, so CPython's cycle collector never tracks (never walks)
them: their size costs no garbage-collection pauses.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, MutableMapping
from itertools import repeat
from operator import contains as _contains
from typing import Any

import msgspec
import numpy as np

from engine.core import schema as s
from engine.core.records import (
    AUCTION_ANNOUNCED,
    AUCTION_CANCELLED,
    AUCTION_CLEARED,
    AUCTION_COMMAND_REJECTED,
    BLOCK_COMMAND_REJECTED,
    BLOCK_OFFER_CANCELLED,
    BLOCK_TRADE_EXECUTED,
    E_ACCOUNT,
    E_KIND,
    E_ORDER_ID,
    EV_AUCTION_ANNOUNCED,
    EV_AUCTION_CANCELLED,
    EV_AUCTION_CLEARED,
    EV_AUCTION_REJECTED,
    EV_BLOCK_CANCELLED,
    EV_BLOCK_REJECTED,
    EV_BLOCK_TRADE,
    EV_CANCELLED,
    EV_REJECTED,
    EV_TRADE,
    K_OPEN_SESSION,
    K_SUBMIT,
    TRADE_EXECUTED,
)


class Annotation(msgspec.Struct, frozen=True, array_like=True):
    """What the gateway stores in the log with each command (a MessagePack array)."""

    user: str
    request_id: int = 0
    client_order_id: str = ""
    """The order's client id (for a cancel or modify: of the order it targets, if the
    command's account owns it)."""
    hidden: bool = False
    """The command named an order, block offer or auction that its account may not see: its
    refusal is reported to the sender as that of an unknown id.  Encoded only when true (an
    annotation without it is the three-element array it always was)."""


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Annotation).decode
NO_ANNOTATION = Annotation(user="")
_TAKER_LEAVES, _MAKER_LEAVES = TRADE_EXECUTED.taker_leaves_t, TRADE_EXECUTED.maker_leaves_t
_MAKER_ORDER_ID, _MAKER_ACCOUNT = TRADE_EXECUTED.maker_order_id, TRADE_EXECUTED.maker_account
_SUBMIT_OFFER = s.SubmitBlockOffer.__struct_config__.tag
_APPLY_AUCTION = s.ApplyAuction.__struct_config__.tag
_MODE_KINDS = frozenset(
    {
        EV_BLOCK_REJECTED,
        EV_BLOCK_TRADE,
        EV_BLOCK_CANCELLED,
        EV_AUCTION_REJECTED,
        EV_AUCTION_ANNOUNCED,
        EV_AUCTION_CLEARED,
        EV_AUCTION_CANCELLED,
    }
)
"""Events that end a block offer or an auction, or make an auction public."""
_MODE_KIND_ARRAY = np.array(sorted(_MODE_KINDS), dtype=np.int64)
NO_COUNTERPARTY = -1


def encode_annotation(annotation: Annotation) -> bytes:
    """The annotation's bytes in the log: ``[user, request_id, client_order_id]``, with a
    fourth element ``true`` only for a hidden command."""
    if annotation.hidden:
        return _encode(annotation)
    return _encode((annotation.user, annotation.request_id, annotation.client_order_id))


def encode_plain_annotations(
    users: list[str], request_ids: list[int], client_order_ids: list[str]
) -> list[bytes]:
    """:func:`encode_annotation` of annotations that are not hidden, given by column."""
    return list(map(_encode, zip(users, request_ids, client_order_ids)))


def decode_annotation(data: bytes | None) -> Annotation:
    """The annotation of a logged command (NO_ANNOTATION when absent or unreadable)."""
    if not data:
        return NO_ANNOTATION
    try:
        return _decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return NO_ANNOTATION


assert (
    BLOCK_COMMAND_REJECTED.offer_id
    == BLOCK_TRADE_EXECUTED.offer_id
    == BLOCK_OFFER_CANCELLED.offer_id
    == AUCTION_COMMAND_REJECTED.auction_id
    == AUCTION_ANNOUNCED.auction_id
    == AUCTION_CLEARED.auction_id
    == AUCTION_CANCELLED.auction_id
    == E_ORDER_ID
), "the offer or auction an event is about is in the order-id column"
assert BLOCK_COMMAND_REJECTED.command == AUCTION_COMMAND_REJECTED.command


# -- maps whose growth never stalls the gateway ------------------------------------------------
PAGE_BITS = 13
"""``OrderIdPages`` holds the client order ids of 2**13 consecutive order ids in one dict."""
_NO_PAGE: dict[int, str] = {}
PART_IDS = 32_768
"""Client order ids in one dict of an account's: then :class:`PartitionedIds` (a dict's last
rehash below this, at 21,845 ids, takes ~1 ms; the next would take ~2.5 ms at 43,690, ~5 at
87,381, ~11 at 174,762 ...)."""
FANOUT = 256
"""The parts a :class:`PartitionedIds` spreads an account's later ids over."""


class OrderIdPages(MutableMapping[int, str]):
    """Order id -> client order id (the tracker's ``client_of``), in pages of 2**13 order ids.

    A dict that grows to a day's orders stops the process each time it doubles, for as long as
    it takes to rehash every entry: measured 2.7 / 5 / 11 / 22 ms at 44 k / 87 k / 175 k /
    350 k ids - a p99 spike for every answer waiting meanwhile.  Order ids are seqs, so
    consecutive ones share a page: no page ever holds more than 8,192 ids (a rehash of at most
    ~0.3 ms), and a page whose ids are all forgotten goes away."""

    __slots__ = ("pages",)

    def __init__(self) -> None:
        self.pages: dict[int, dict[int, str]] = {}

    def get(self, order_id, default=None):  # type: ignore[override]
        return self.pages.get(order_id >> PAGE_BITS, _NO_PAGE).get(order_id, default)

    def __getitem__(self, order_id: int) -> str:
        return self.pages.get(order_id >> PAGE_BITS, _NO_PAGE)[order_id]

    def __setitem__(self, order_id: int, client_order_id: str) -> None:
        page = self.pages.get(order_id >> PAGE_BITS)
        if page is None:
            page = self.pages[order_id >> PAGE_BITS] = {}
        page[order_id] = client_order_id

    def __delitem__(self, order_id: int) -> None:
        key = order_id >> PAGE_BITS
        page = self.pages.get(key, _NO_PAGE)
        del page[order_id]
        if not page:
            del self.pages[key]

    def pop(self, order_id, default=None):  # type: ignore[override]
        key = order_id >> PAGE_BITS
        page = self.pages.get(key)
        if page is None:
            return default
        value = page.pop(order_id, default)
        if not page:
            del self.pages[key]
        return value

    def __iter__(self) -> Iterator[int]:
        for key in sorted(self.pages):
            yield from self.pages[key]

    def __len__(self) -> int:
        return sum(map(len, self.pages.values()))

    def add_run(self, first: int, client_order_ids: list[str]) -> None:
        """``self[first + k] = client_order_ids[k]`` for every k (a run of new orders)."""
        end, at = first + len(client_order_ids), first
        while at < end:
            stop = min(end, ((at >> PAGE_BITS) + 1) << PAGE_BITS)
            page = self.pages.get(at >> PAGE_BITS)
            if page is None:
                page = self.pages[at >> PAGE_BITS] = {}
            page.update(zip(range(at, stop), client_order_ids[at - first : stop - first]))
            at = stop

    def get_many(self, order_ids: np.ndarray) -> list[str]:
        """The client order id of each of ``order_ids`` ("" where none), page by page."""
        if not len(order_ids):
            return []
        keys = order_ids >> PAGE_BITS
        low, high = int(keys.min()), int(keys.max())
        if low == high:
            page = self.pages.get(low, _NO_PAGE)
            return list(map(page.get, order_ids.tolist(), repeat("")))
        found = np.empty(len(order_ids), dtype=object)
        for key in np.unique(keys).tolist():
            at = np.flatnonzero(keys == key)
            page = self.pages.get(key, _NO_PAGE)
            found[at] = list(map(page.get, order_ids[at].tolist(), repeat("")))
        return found.tolist()


class PartitionedIds(MutableMapping[str, int]):
    """A very active account's reserved client order id -> order id (a value of the
    tracker's ``by_client``): the dict it grew in, frozen, and the ids reserved since in
    :data:`FANOUT` dicts, chosen by the low bits of the id's hash.

    An account's ids are one plain dict until it holds :data:`PART_IDS` of them
    (``OrderTracker.grown`` then makes that dict the ``first`` of one of these, copying
    nothing): a dict that grows to a very active account's day stops the process at each
    doubling, to rehash every entry (see :class:`OrderIdPages`).  ``first`` then only
    shrinks, and each of the parts holds a 1/:data:`FANOUT` share of the later ids, so its
    rehashes stay short (~0.25 ms at a million ids for the account, ~2.5 ms at ten million).
    Any id is in ``first`` or in the one part its hash names: the intake's duplicate check of
    a run (:meth:`isdisjoint`) is one C-level call on ``first`` and one lookup an id, however
    many ids the account holds (asking a list of time-ordered parts each in turn cost ~15 % of
    the server's CPU at 50 k orders/s on one account).  Hashes are Python's own (salted per
    process): which part holds an id differs from run to run, what is reserved never does.
    It offers what the gateway uses of the plain dict, so either may be an account's; an id
    lives in exactly one dict."""

    __slots__ = ("first", "parts", "mask")

    def __init__(self, first: dict[str, int], fanout: int = 0) -> None:
        fanout = fanout or FANOUT
        if fanout & (fanout - 1):
            raise ValueError(f"fanout must be a power of two, not {fanout}")
        self.first = first
        """The plain dict the account's ids grew in: never added to again."""
        self.parts: list[dict[str, int]] = [{} for _ in range(fanout)]
        """The ids reserved since, by ``hash(id) & mask``."""
        self.mask = fanout - 1

    def _part(self, client_order_id: str) -> dict[str, int]:
        """The dict that holds ``client_order_id`` if any does."""
        if client_order_id in self.first:
            return self.first
        return self.parts[hash(client_order_id) & self.mask]

    def get(self, client_order_id, default=None):  # type: ignore[override]
        return self._part(client_order_id).get(client_order_id, default)

    def __contains__(self, client_order_id: object) -> bool:
        if client_order_id in self.first:
            return True
        return client_order_id in self.parts[hash(client_order_id) & self.mask]

    def add_new(self, client_order_id: str, order_id: int) -> None:
        """Reserve an id known not to be reserved (``in`` said so)."""
        self.parts[hash(client_order_id) & self.mask][client_order_id] = order_id

    def __getitem__(self, client_order_id: str) -> int:
        return self._part(client_order_id)[client_order_id]

    def __setitem__(self, client_order_id: str, order_id: int) -> None:
        self._part(client_order_id)[client_order_id] = order_id

    def __delitem__(self, client_order_id: str) -> None:
        del self._part(client_order_id)[client_order_id]

    def __iter__(self) -> Iterator[str]:
        yield from self.first
        for part in self.parts:
            yield from part

    def __len__(self) -> int:
        return len(self.first) + sum(map(len, self.parts))

    def __bool__(self) -> bool:
        return bool(self.first) or any(self.parts)

    def keys(self) -> PartitionedIds:  # type: ignore[override]
        """Itself: what ``keys()`` is used for here is :meth:`isdisjoint`."""
        return self

    def isdisjoint(self, client_order_ids: list[str]) -> bool:
        """Is none of ``client_order_ids`` reserved?"""
        if not self.first.keys().isdisjoint(client_order_ids):
            return False
        parts, mask = self.parts, self.mask
        named = [parts[code & mask] for code in map(hash, client_order_ids)]
        return not any(map(_contains, named, client_order_ids))

    def update(self, pairs: Iterable[tuple[str, int]]) -> None:  # type: ignore[override]
        """Reserve each (client order id, order id) of ``pairs``, none of them reserved yet
        (the intake's run, checked by :meth:`isdisjoint`)."""
        parts, mask = self.parts, self.mask
        for client_order_id, order_id in pairs:
            parts[hash(client_order_id) & mask][client_order_id] = order_id


class OrderTracker:
    """Client order ids, live orders, live offers and auctions, cancel-on-disconnect owners."""

    part_ids = PART_IDS
    """Reserved ids of one account from which they are a :class:`PartitionedIds`."""
    fanout = FANOUT
    """The parts of a :class:`PartitionedIds` it makes."""

    def __init__(self) -> None:
        self.by_client: dict[int, dict[str, int] | PartitionedIds] = {}
        """account -> its reserved client order ids -> their order ids (a dict, or for a very
        active account a :class:`PartitionedIds`)."""
        self.client_of = OrderIdPages()
        self.live: dict[int, set[int]] = {}
        """account -> its live order ids (resting or in flight)."""
        self.owner: dict[int, Any] = {}
        """order id -> the connection that entered it (only cancel-on-disconnect ones)."""
        self.trading_date = 0
        """The latest trading date an ``OpenSession`` command named (0: none yet)."""
        self.day_start_seq = 0
        """Seq of the command that began the current trading day."""
        self.ended_today = array("q")
        """Order id, account, order id, account … of the orders entered this trading day that
        have ended (a flat array: 16 bytes an order): their client order ids are forgotten
        when the next trading day begins."""
        self.offers: dict[int, tuple[int, int]] = {}
        """Live block offer id -> (account, counterparty or -1)."""
        self.auctions: dict[int, tuple[int, bool]] = {}
        """Live auction id -> (seller account, announced)."""

    @property
    def open_count(self) -> dict[int, int]:
        """Account -> its number of live orders (resting plus in flight)."""
        return {account: len(orders) for account, orders in self.live.items()}

    def size(self) -> int:
        """Entries held (client order ids, live orders, ended orders awaiting the next day):
        what the memory bound is about."""
        return (
            len(self.client_of)
            + sum(len(known) for known in self.by_client.values())
            + sum(len(orders) for orders in self.live.values())
            + len(self.ended_today) // 2
        )

    # -- requests ------------------------------------------------------------------------------
    def lookup(self, account: int, client_order_id: str) -> int | None:
        """The engine order id of an account's reserved client order id (None: not reserved)."""
        known = self.by_client.get(account)
        return None if known is None else known.get(client_order_id)

    def reserve(self, account: int, client_order_id: str, order_id: int, owner=None) -> None:
        """Record a new order about to be submitted: its ids, one more live order, its owner."""
        self._remember(account, client_order_id, order_id)
        live = self.live.get(account)
        if live is None:
            live = self.live[account] = set()
        live.add(order_id)
        if owner is not None:
            self.owner[order_id] = owner
            owner.live_orders[order_id] = account

    def _remember(self, account: int, client_order_id: str, order_id: int) -> None:
        """An order's client order id, both ways."""
        known = self.by_client.get(account)
        if known is None:
            known = self.by_client[account] = {}
        known[client_order_id] = order_id
        if type(known) is dict and len(known) >= self.part_ids:
            self.grown(account)
        self.client_of[order_id] = client_order_id

    def grown(self, account: int) -> dict[str, int] | PartitionedIds:
        """The account's reserved ids, made a :class:`PartitionedIds` if they have reached
        :attr:`part_ids` (call after adding some)."""
        known = self.by_client[account]
        if type(known) is dict and len(known) >= self.part_ids:
            known = self.by_client[account] = PartitionedIds(known, self.fanout)
        return known

    def withdraw(self, order_id: int, account: int) -> None:
        """Undo :meth:`reserve`: the order was never sequenced (its batch was refused), so
        its client order id is free again at once."""
        live = self.live.get(account)
        if live is not None:
            live.discard(order_id)
        owner = self.owner.pop(order_id, None)
        if owner is not None:
            owner.live_orders.pop(order_id, None)
        self._forget(order_id, account)

    def owns(self, account: int, order_id: int) -> bool:
        """Is ``order_id`` an order of ``account`` (live, or ended with its id still known)?"""
        if order_id in self.live.get(account, ()):
            return True
        client_order_id = self.client_of.get(order_id)
        return client_order_id is not None and self.lookup(account, client_order_id) == order_id

    def offer_hidden(self, account: int, offer_id: int, accepting: bool) -> bool:
        """May ``account`` not know that block offer ``offer_id`` exists?  An open offer is
        public (to accept it); a directed one is its two parties'; only the offerer may cancel."""
        offer = self.offers.get(offer_id)
        if offer is None:
            return False  # no such offer: the engine says so itself
        offerer, counterparty = offer
        if accepting:
            return counterparty != NO_COUNTERPARTY and account not in (offerer, counterparty)
        return account != offerer

    def auction_hidden(self, account: int, auction_id: int) -> bool:
        """May ``account`` not know that auction ``auction_id`` exists?  An auction is its
        seller's until the operator announces it."""
        auction = self.auctions.get(auction_id)
        return auction is not None and not auction[1] and auction[0] != account

    def created(self, command, seq: int) -> None:
        """A block offer or auction application about to be submitted with id ``seq``."""
        if type(command) is s.SubmitBlockOffer:
            self.offers[seq] = (command.account, command.counterparty)
        elif type(command) is s.ApplyAuction:
            self.auctions[seq] = (command.account, False)

    # -- trading days ----------------------------------------------------------------------------
    def open_session(self, seq: int, trading_date: int) -> None:
        """An ``OpenSession`` command for ``trading_date`` was sequenced as ``seq``: a later
        date begins a new trading day, and the ids of the ended orders are forgotten."""
        if trading_date <= self.trading_date:
            return
        self.trading_date, self.day_start_seq = trading_date, seq
        forget, ended = self._forget, self.ended_today
        for k in range(0, len(ended), 2):
            forget(ended[k], ended[k + 1])
        self.ended_today = array("q")

    def _forget(self, order_id: int, account: int) -> None:
        client_order_id = self.client_of.pop(order_id, None)
        if client_order_id is None:
            return
        known = self.by_client.get(account)
        if known is not None and known.get(client_order_id) == order_id:
            del known[client_order_id]
            if not known:
                del self.by_client[account]

    # -- events --------------------------------------------------------------------------------
    def _ended(self, order_id: int, account: int) -> None:
        live = self.live.get(account)
        if live is not None:
            live.discard(order_id)
        owner = self.owner.pop(order_id, None)
        if owner is not None:
            owner.live_orders.pop(order_id, None)
        if order_id < self.day_start_seq:
            self._forget(order_id, account)
        else:
            self.ended_today.extend((order_id, account))

    def apply(self, rows: list) -> None:
        """Update from a batch's event records (an order ends exactly once).  The form for a
        few rows; :meth:`apply_table` is the same for a large batch."""
        ended, mode_kinds = self._ended, _MODE_KINDS
        for row in rows:
            kind = row[E_KIND]
            if kind == EV_TRADE:
                if row[_TAKER_LEAVES] == 0:
                    ended(row[E_ORDER_ID], row[E_ACCOUNT])
                if row[_MAKER_LEAVES] == 0:
                    ended(row[_MAKER_ORDER_ID], row[_MAKER_ACCOUNT])
            elif kind == EV_CANCELLED or kind == EV_REJECTED:
                ended(row[E_ORDER_ID], row[E_ACCOUNT])
            elif kind in mode_kinds:
                self._mode_event(kind, row)

    def apply_table(self, table: np.ndarray) -> None:
        """:meth:`apply` for a batch's events as a table (``EVENT_FIELDS`` int64 columns).
        The orders that end are picked out with array operations, in event order (a trade's
        taker, then its maker); only they, and the rare block-offer and auction events, cost
        a step of Python (the array operations cost ~15 us a batch: for a few rows,
        :meth:`apply` is cheaper)."""
        kinds = table[:, E_KIND]
        trade = kinds == EV_TRADE
        legs = np.empty((len(table), 2), dtype=bool)
        legs[:, 0] = (trade & (table[:, _TAKER_LEAVES] == 0)) | (kinds == EV_CANCELLED)
        legs[:, 0] |= kinds == EV_REJECTED
        legs[:, 1] = trade & (table[:, _MAKER_LEAVES] == 0)
        ids = np.stack((table[:, E_ORDER_ID], table[:, _MAKER_ORDER_ID]), axis=1)[legs]
        accounts = np.stack((table[:, E_ACCOUNT], table[:, _MAKER_ACCOUNT]), axis=1)[legs]
        self.end_orders(ids, accounts)
        if len(kinds) and kinds.max() >= _MODE_KIND_ARRAY[0]:  # else no block/auction event
            self.apply_mode_events(table)

    def apply_mode_events(self, table: np.ndarray) -> None:
        """:meth:`apply_table` for the block-offer and auction events of ``table`` only."""
        kinds = table[:, E_KIND]
        for i in np.flatnonzero(np.isin(kinds, _MODE_KIND_ARRAY)).tolist():
            self._mode_event(int(kinds[i]), table[i].tolist())

    def end_orders(self, order_ids: np.ndarray, accounts: np.ndarray) -> None:
        """:meth:`_ended` for each (order id, account), in order, a set operation per account
        and an array extension for the lot (this runs for every order that ends); the part
        of :meth:`apply_table` about orders, for ids picked out by the caller (the compiled
        ``gateway.fastpath.ended_orders``)."""
        if not len(order_ids):
            return
        live_get = self.live.get
        low, high = int(accounts.min()), int(accounts.max())
        if low == high:
            live = live_get(low)
            if live is not None:
                live.difference_update(order_ids.tolist())
        else:
            by_account = np.argsort(accounts, kind="stable")
            ordered = accounts[by_account]
            cuts = (np.flatnonzero(ordered[1:] != ordered[:-1]) + 1).tolist()
            for start, end in zip([0, *cuts], [*cuts, len(ordered)]):
                live = live_get(int(ordered[start]))
                if live is not None:
                    live.difference_update(order_ids[by_account[start:end]].tolist())
        if self.owner:
            owner_pop = self.owner.pop
            for order_id in order_ids.tolist():
                owner = owner_pop(order_id, None)
                if owner is not None:
                    owner.live_orders.pop(order_id, None)
        earlier = order_ids < self.day_start_seq  # entered on an earlier trading day
        if earlier.any():
            for order_id, account in zip(
                order_ids[earlier].tolist(), accounts[earlier].tolist(), strict=True
            ):
                self._forget(order_id, account)
            today = ~earlier
            order_ids, accounts = order_ids[today], accounts[today]
        pairs = np.empty((len(order_ids), 2), dtype=np.int64)
        pairs[:, 0], pairs[:, 1] = order_ids, accounts
        self.ended_today.frombytes(pairs.tobytes())

    def _mode_event(self, kind: int, row: list) -> None:
        target = row[E_ORDER_ID]
        if kind == EV_AUCTION_ANNOUNCED:
            auction = self.auctions.get(target)
            if auction is not None:
                self.auctions[target] = (auction[0], True)
        elif kind == EV_BLOCK_REJECTED:
            if row[BLOCK_COMMAND_REJECTED.command] == _SUBMIT_OFFER:
                self.offers.pop(target, None)
        elif kind == EV_AUCTION_REJECTED:
            if row[AUCTION_COMMAND_REJECTED.command] == _APPLY_AUCTION:
                self.auctions.pop(target, None)
        elif kind in (EV_BLOCK_TRADE, EV_BLOCK_CANCELLED):
            self.offers.pop(target, None)
        else:  # cleared or cancelled
            self.auctions.pop(target, None)

    # -- recovery ------------------------------------------------------------------------------
    @classmethod
    def recover(cls, exchange) -> OrderTracker:
        """Rebuild from the exchange's log (annotations, ``OpenSession`` commands) and its
        recovered engine (books, block offers, auctions): the state the running gateway had."""
        tracker = cls()
        engine = exchange.engine
        for symbol in exchange.market.symbols:
            for side in (s.Side.BUY, s.Side.SELL):
                for order in engine.orders(symbol, side):
                    tracker.live.setdefault(order.account, set()).add(order.order_id)
        live_ids = {order_id for orders in tracker.live.values() for order_id in orders}
        entered_today: list[tuple[int, int]] = []
        decode_command = exchange.codec.decode_command
        for batch in exchange.journal.read(1):
            commands = batch.commands
            kinds = commands["kind"]
            wanted = np.flatnonzero((kinds == K_SUBMIT) | (kinds == K_OPEN_SESSION))
            if not len(wanted):
                continue
            annotations = batch.annotations()
            columns = zip(
                wanted.tolist(),
                kinds[wanted].tolist(),
                commands["account"][wanted].tolist(),
                commands["order_id"][wanted].tolist(),
            )
            for i, kind, account, order_id in columns:
                if kind == K_OPEN_SESSION:
                    command = decode_command(commands[i].tolist())
                    if command.trading_date > tracker.trading_date:
                        tracker.trading_date = command.trading_date
                        tracker.day_start_seq = command.seq
                        for entered, entered_account in entered_today:
                            if entered not in live_ids:
                                tracker._forget(entered, entered_account)
                        entered_today = []
                elif annotations is not None:
                    client_order_id = decode_annotation(annotations[i]).client_order_id
                    if client_order_id:
                        tracker._remember(account, client_order_id, order_id)
                        entered_today.append((order_id, account))
        for order_id, account in entered_today:
            if order_id not in live_ids:
                tracker.ended_today.extend((order_id, account))
        tracker.offers = {
            offer.offer_id: (offer.account, offer.counterparty) for offer in engine.block_offers()
        }
        tracker.auctions = {
            auction.auction_id: (auction.account, auction.state != s.AuctionState.APPLIED)
            for auction in engine.auctions()
        }
        return tracker
