"""The human-readable output of every replay command (``--json`` prints the Structs instead).

Theory of operation
-------------------
One function per command turns its result Struct into text: a headline that answers the
question (intact? matches? where do they diverge?), then aligned tables.  Prices and money are
shown in CNY from integer fen, times in China Standard Time (:mod:`replay.render`); typed
commands and events are shown as ``Name field=value ...`` with enum members by name.
"""

from __future__ import annotations

import csv
import enum
import io

import msgspec

from replay.render import cny, table, timestamp, trading_date


def describe(item: object) -> str:
    """A typed command or event on one line: ``TradeExecuted seq=5 price_ticks=6000 ...``."""
    fields = msgspec.structs.asdict(item) if isinstance(item, msgspec.Struct) else {}
    parts = [type(item).__name__]
    for name, value in fields.items():
        if isinstance(value, enum.Enum):
            value = value.name
        elif isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        parts.append(f"{name}={value}")
    return " ".join(parts)


def _price(ticks: int | None) -> str:
    return "-" if ticks is None else cny(ticks)


# -- verify ------------------------------------------------------------------------------------


def verify_text(result) -> str:
    """``verify``: intact or where the first damage is, then the summary."""
    log = result.log
    lines = []
    if log.problem is None:
        lines.append(f"log intact: {log.log_dir}")
    else:
        p = log.problem
        kind = " (an unfinished tail: recovery would truncate it)" if p.at_tail else ""
        lines.append(
            f"log DAMAGED: segment {p.segment}, byte offset {p.offset}, seq {p.seq}: {p.what}{kind}"
        )
        lines.append("intact up to the problem:")
    lines.append(f"  market {result.market!r} (digest {result.market_digest[:16]}…)")
    lines.append(
        f"  {len(log.segments)} segments, {log.records:,} records, {log.batches:,} "
        f"batches, {log.commands:,} commands, {log.events:,} events"
    )
    if log.batches:
        lines.append(f"  seq {log.first_seq:,} … {log.last_seq:,}")
        lines.append(f"  time {timestamp(log.first_ts_ns)} … {timestamp(log.last_ts_ns)}")
    lines.append(f"  chain hash {log.chain_hash}")
    bad = [check for check in result.snapshots if check.problem is not None]
    lines.append(f"snapshots: {len(result.snapshots) - len(bad)} intact, {len(bad)} bad")
    for check in bad:
        lines.append(f"  BAD {check.path}: {check.problem}")
    return "\n".join(lines)


# -- run and book --------------------------------------------------------------------------------


def _summary_rows(instruments) -> list[list[object]]:
    return [
        [
            i.instrument,
            i.session,
            i.phase or "-",
            trading_date(i.trading_date),
            cny(i.reference_price_ticks),
            f"{cny(i.lower_band_ticks)}…{cny(i.upper_band_ticks)}",
            _price(i.bids.best_ticks),
            _price(i.asks.best_ticks),
            f"{i.bids.orders:,}",
            f"{i.bids.qty_t:,}",
            f"{i.asks.orders:,}",
            f"{i.asks.qty_t:,}",
        ]
        for i in instruments
    ]


_SUMMARY_HEADERS = (
    "instrument",
    "session",
    "phase",
    "date",
    "reference",
    "band",
    "bid",
    "ask",
    "bid orders",
    "bid t",
    "ask orders",
    "ask t",
)


def _tail_note(tail) -> list[str]:
    if tail is None:
        return []
    note = (
        f"note: ignored an unfinished batch at the end of the log ({tail.segment}, byte "
        f"offset {tail.offset}, seq {tail.seq}: {tail.what})"
    )
    return [note]


def run_text(report) -> str:
    """``run``: the state hash and the per-instrument and per-account-kind summaries."""
    when = timestamp(report.last_ts_ns) if report.last_seq else "before the first command"
    lines = [f"state after seq {report.last_seq:,} ({when}), engine {report.engine}"]
    lines.append(f"state hash {report.state_hash}")
    chain = report.chain_hash or "- (the stop falls inside a batch)"
    lines.append(f"log chain hash {chain}")
    start = (
        "seq 1" if report.snapshot_seq is None else f"the snapshot at seq {report.snapshot_seq:,}"
    )
    lines.append(
        f"replayed {report.batches:,} batches, {report.commands:,} commands, "
        f"{report.events:,} events from {start}"
    )
    for skipped in report.skipped_snapshots:
        lines.append(f"skipped snapshot {skipped.path}: {skipped.reason}")
    lines.append(f"resting orders {report.resting_orders:,}")
    lines.append("")
    lines.append(table(_SUMMARY_HEADERS, _summary_rows(report.instruments)))
    if report.account_kinds:
        rows = [
            [
                k.kind,
                k.accounts,
                k.frozen_accounts,
                cny(k.cash_available_fen),
                cny(k.cash_locked_fen),
                f"{k.tradable_t:,}",
                f"{k.locked_t:,}",
                f"{k.frozen_t:,}",
                f"{k.unsettled_t:,}",
            ]
            for k in report.account_kinds
        ]
        headers = (
            "account kind",
            "accounts",
            "frozen",
            "cash CNY",
            "cash locked CNY",
            "tradable t",
            "locked t",
            "frozen t",
            "unsettled t",
        )
        lines += ["", table(headers, rows)]
    return "\n".join(lines + _tail_note(report.tail))


def book_text(report) -> str:
    """``book``: aggregated levels side by side, or every order in priority order."""
    i = report.summary
    when = timestamp(report.last_ts_ns) if report.last_seq else "before the first command"
    lines = [
        f"{report.instrument} after seq {report.last_seq:,} ({when})",
        (
            f"session {i.session}{f' ({i.phase})' if i.phase else ''} "
            f"{trading_date(i.trading_date)}, reference "
            f"{cny(i.reference_price_ticks)}, band {cny(i.lower_band_ticks)} … "
            f"{cny(i.upper_band_ticks)}; {i.bids.orders:,} bids, {i.asks.orders:,} asks"
        ),
        "",
    ]
    if report.bid_orders is not None:
        for title, orders in (("bids", report.bid_orders), ("asks", report.ask_orders)):
            rows = [
                [
                    n,
                    o.order_id,
                    o.account,
                    cny(o.price_ticks),
                    f"{o.qty_t:,}",
                    o.order_type.name,
                    o.tif.name,
                ]
                for n, o in enumerate(orders, 1)
            ]
            headers = ("#", "order id", "account", "price", "open t", "type", "tif")
            shown = table(headers, rows) if rows else "  (none)"
            lines += [f"{title} (priority order)", shown, ""]
        return "\n".join(lines).rstrip()
    rows = []
    for n in range(max(len(report.bids), len(report.asks))):
        bid = report.bids[n] if n < len(report.bids) else None
        ask = report.asks[n] if n < len(report.asks) else None
        rows.append(
            [
                bid.orders if bid else "",
                f"{bid.qty_t:,}" if bid else "",
                cny(bid.price_ticks) if bid else "",
                cny(ask.price_ticks) if ask else "",
                f"{ask.qty_t:,}" if ask else "",
                ask.orders if ask else "",
            ]
        )
    headers = ("bid orders", "bid t", "bid", "ask", "ask t", "ask orders")
    return "\n".join(lines + [table(headers, rows)])


# -- audit ---------------------------------------------------------------------------------------


def audit_text(report, show: int = 20) -> str:
    """``audit``: OK with the hashes, or the diverging batch (``show`` lines of each list)."""
    lines = []
    if report.ok:
        lines.append(
            f"audit OK: every batch's events match its checkpoint (engine {report.engine})"
        )
    elif report.divergence is None:
        d = report.damage
        lines.append(
            f"audit FAILED: acknowledged data missing: segment {d.segment}, byte offset "
            f"{d.offset}, seq {d.seq}: {d.what}"
        )
    else:
        d = report.divergence
        lines.append(
            f"audit FAILED: batch seq {d.first_seq:,} … {d.last_seq:,} does not match "
            f"its checkpoint (engine {report.engine})"
        )
    span = f" (seq {report.first_seq:,} … {report.last_seq:,})" if report.batches else ""
    lines.append(
        f"  {report.batches:,} batches, {report.commands:,} commands, "
        f"{report.events:,} events matched{span}"
    )
    lines.append(f"  events hash {report.events_hash}")
    if report.ok:
        lines.append(f"  state hash {report.state_hash}")
    elif report.divergence is not None:
        lines += _divergence_lines(report.divergence, show)
    return "\n".join(lines + _tail_note(report.tail))


def _divergence_lines(d, show: int) -> list[str]:
    lines = [
        f"  batch at {d.segment}, byte offset {d.offset}, time {timestamp(d.ts_ns)}",
        f"  recorded:   {d.recorded_count:,} events, digest {d.recorded_digest}",
        f"  recomputed: {d.recomputed_count:,} events, digest {d.recomputed_digest}",
        f"commands ({len(d.commands):,}):",
    ]
    lines += [f"  {describe(c)}" for c in d.commands[:show]]
    if len(d.commands) > show:
        lines.append(f"  … {len(d.commands) - show:,} more (--show N, or --json for all)")
    lines.append(f"recomputed events ({len(d.recomputed_events):,}):")
    lines += [f"  {describe(e)}" for e in d.recomputed_events[:show]]
    if len(d.recomputed_events) > show:
        more = len(d.recomputed_events) - show
        lines.append(f"  … {more:,} more (--show N, or --json for all)")
    return lines


# -- reports ---------------------------------------------------------------------------------------


def trades_csv(trades) -> str:
    """Every trade as CSV with a header row (integers: ticks, tonnes, fen, nanoseconds)."""
    from replay.reports import TradeRow

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TradeRow.__struct_fields__)
    writer.writerows(msgspec.structs.astuple(trade) for trade in trades)
    return buffer.getvalue()


def market_text(history) -> str:
    """``market``: one row per trading day and instrument with the listing prices and the
    volume of each trading mode, the block and auction business, and the composite prices."""
    bars = history.days
    if not bars:
        return "no trading sessions in the log"
    rows = [
        [
            trading_date(b.trading_date),
            b.instrument,
            cny(b.previous_close_ticks),
            cny(b.open_ticks),
            cny(b.high_ticks),
            cny(b.low_ticks),
            cny(b.close_ticks),
            cny(b.change_ticks),
            f"{b.volume_t:,}",
            f"{b.block_volume_t:,}",
            f"{b.auction_volume_t:,}",
            cny(b.total_value_fen),
            f"{b.trades + b.block_trades + b.auction_trades:,}",
            "" if b.final else "open",
        ]
        for b in bars
    ]
    headers = (
        "date",
        "instrument",
        "prev close",
        "open",
        "high",
        "low",
        "close",
        "change",
        "listing t",
        "block t",
        "auction t",
        "total CNY",
        "trades",
        "",
    )
    lines = [table(headers, rows)]
    if any(not b.final for b in bars):
        lines.append("(open: the session is still open at the end of the log; figures so far)")
    mixed = [
        b
        for b in bars
        if b.block_volume_t or b.block_trades or b.auction_volume_t or b.auction_trades
    ]
    if mixed:
        lines += [
            "",
            "days with block trades or auction fills, by trading mode (open, high, low "
            "and close come from listing trades only)",
            table(*_mode_table(mixed)),
        ]
    else:
        lines += ["", "no block trades or auction fills: listing only"]
    lines += ["", _composite_text(history.composite)]
    return "\n".join(lines)


_MODES = (
    ("listing", "volume_t", "value_fen", "trades"),
    ("block", "block_volume_t", "block_value_fen", "block_trades"),
    ("auction", "auction_volume_t", "auction_value_fen", "auction_trades"),
)


def _mode_table(bars) -> tuple[tuple[str, ...], list[list[object]]]:
    """One row per mode that traded on each of ``bars`` (listing always), with its share of
    the day's tonnes."""
    rows = []
    for b in bars:
        for mode, volume, value, trades in _MODES:
            qty, fen, count = getattr(b, volume), getattr(b, value), getattr(b, trades)
            if mode != "listing" and not (qty or count):
                continue
            share = f"{100 * qty / b.total_volume_t:.1f}" if b.total_volume_t else "-"
            rows.append(
                [
                    trading_date(b.trading_date),
                    b.instrument,
                    mode,
                    f"{qty:,}",
                    cny(fen),
                    f"{count:,}",
                    share,
                ]
            )
    headers = ("date", "instrument", "mode", "volume t", "value CNY", "trades", "% of t")
    return headers, rows


def _composite_text(composite) -> str:
    if not composite:
        return "composite price: none published (it follows the close of every allowance vintage)"
    rows = [
        [
            trading_date(c.trading_date),
            cny(c.price_ticks),
            "-" if c.change_ticks is None else cny(c.change_ticks),
            c.vintages,
        ]
        for c in composite
    ]
    return "composite price (mean of the vintages' closes)\n" + table(
        ("date", "composite", "change", "vintages"), rows
    )


def statement_text(statement) -> str:
    """``statement``: the lines, the flows per instrument, the balances."""
    lines = [f"statement of account {statement.account}"]
    if statement.from_ts_ns is not None:
        lines.append(
            f"from {timestamp(statement.from_ts_ns)}; opening net cash "
            f"{cny(statement.opening_net_cash_fen)}"
        )
    if statement.to_ts_ns is not None:
        lines.append(f"up to (not including) {timestamp(statement.to_ts_ns)}")
    rows = [
        [
            line.seq,
            timestamp(line.ts_ns),
            line.event,
            line.role,
            line.instrument or "",
            _change(line.qty_change_t),
            _money_change(line.cash_change_fen),
            cny(line.fee_fen) if line.fee_fen else "",
            f"{line.net_t:,}",
            cny(line.net_cash_fen),
            _detail(line.detail),
        ]
        for line in statement.lines
    ]
    headers = (
        "seq",
        "time",
        "event",
        "role",
        "instrument",
        "Δ t",
        "Δ CNY",
        "fee CNY",
        "net t",
        "net CNY",
        "detail",
    )
    lines += ["", table(headers, rows) if rows else "no events in the period", ""]
    flows = [
        [
            f.instrument,
            f"{f.net_t:,}",
            f"{f.bought_t:,}",
            f"{f.sold_t:,}",
            f"{f.block_t:,}",
            f"{f.auction_t:,}",
            cny(f.paid_fen),
            cny(f.received_fen),
            cny(f.fees_fen),
        ]
        for f in statement.flows
    ]
    if flows:
        headers = (
            "instrument",
            "net t",
            "bought t",
            "sold t",
            "of which block t",
            "auction t",
            "paid CNY",
            "received CNY",
            "fees CNY",
        )
        lines += [table(headers, flows), ""]
    lines.append(f"net cash moved {cny(statement.net_cash_fen)} (fees included)")
    lines += _balance_lines(statement.balances)
    counts = ", ".join(f"{name} {n:,}" for name, n in statement.events_by_kind.items())
    lines.append(f"events: {counts or 'none'}")
    return "\n".join(lines)


def _balance_lines(balances) -> list[str]:
    if balances is None:
        return []
    frozen = ", FROZEN" if balances.frozen else ""
    lines = [
        "",
        (
            f"balances at the end of the period ({balances.kind.name}{frozen}): cash available "
            f"{cny(balances.cash_available_fen)}, locked {cny(balances.cash_locked_fen)}"
        ),
    ]
    rows = [
        [
            h.instrument,
            f"{h.tradable_t:,}",
            f"{h.locked_t:,}",
            f"{h.frozen_t:,}",
            f"{h.unsettled_t:,}",
        ]
        for h in balances.holdings
        if h.tradable_t or h.locked_t or h.frozen_t or h.unsettled_t
    ]
    if rows:
        headers = ("instrument", "tradable t", "locked t", "frozen t", "unsettled t")
        lines.append(table(headers, rows))
    return lines


def _change(qty: int) -> str:
    return f"{qty:+,}" if qty else ""


def _money_change(fen: int) -> str:
    return ("+" if fen > 0 else "") + cny(fen) if fen else ""


_DETAIL_SKIP = {"seq", "ts_ns", "account", "instrument"}


def _detail(event) -> str:
    fields = msgspec.structs.asdict(event)
    parts = []
    for name, value in fields.items():
        if name in _DETAIL_SKIP:
            continue
        parts.append(f"{name}={value.name if isinstance(value, enum.Enum) else value}")
    return " ".join(parts)


# -- diff ------------------------------------------------------------------------------------------


def diff_text(result) -> str:
    """``diff``: identical, or the diverging seq with both sides' command and events."""
    if result.identical:
        note = " (market definitions differ)" if result.markets_differ else ""
        return (
            f"identical: both logs end at seq {result.compared_through_seq:,}, same "
            f"commands and outcomes{note}"
        )
    what = {
        "command": "the commands differ",
        "events": "the same command has other outcomes",
        "length": "one log ends before the other",
    }[result.what]
    lines = [
        f"logs diverge at seq {result.first_seq:,}: {what}",
        f"identical through seq {result.compared_through_seq:,}",
    ]
    if result.markets_differ:
        lines.append("the market definitions differ")
    for label, command, events, last in (
        ("A", result.command_a, result.events_a, result.last_seq_a),
        ("B", result.command_b, result.events_b, result.last_seq_b),
    ):
        if command is None:
            lines.append(
                f"{label}: no command (log ends at seq {last:,})"
                if last is not None
                else f"{label}: no command"
            )
            continue
        lines.append(f"{label}: {describe(command)}")
        lines += [f"   -> {describe(event)}" for event in events]
    return "\n".join(lines)


# -- compliance ------------------------------------------------------------------------------------


def compliance_text(report) -> str:
    """``compliance``: the year's state, each entity's emissions and position, the totals."""
    if report.closed:
        headline = (
            f"compliance year {report.year}: CLOSED at seq {report.closed_seq:,} "
            f"({timestamp(report.closed_ts_ns)}); reference price "
            f"{cny(report.reference_price_ticks)}, penalty {report.penalty_multiple} × the "
            "reference price per tonne short"
        )
    else:
        headline = (
            f"compliance year {report.year}: OPEN at the end of the log (seq "
            f"{report.last_seq:,}): shortfalls so far; penalties are set when the year closes"
        )
    lines = [headline]
    if not report.entities:
        return "\n".join(lines + ["no compliance entities in the log"])
    lines += ["", "emissions", table(*_emission_table(report.entities)), ""]
    lines += ["position", table(*_position_table(report)), ""]
    lines.append(_compliance_totals(report))
    lines += [f"DISCREPANCY {d}" for d in report.discrepancies]
    return "\n".join(lines)


def _emission_table(entities) -> tuple[tuple[str, ...], list[list[object]]]:
    rows = [
        [
            p.account,
            p.sector.name,
            p.province or "-",
            f"{p.co2_t:,}",
            f"{p.cf4_kg:,}",
            f"{p.c2f6_kg:,}",
            p.gwp.name if p.gwp is not None else "-",
            f"{p.obligation_t:,}",
            f"{p.report_seq:,}" if p.report_seq is not None else "-",
        ]
        for p in entities
    ]
    headers = (
        "account",
        "sector",
        "province",
        "CO2 t",
        "CF4 kg",
        "C2F6 kg",
        "GWP",
        "obligation t",
        "report seq",
    )
    return headers, rows


def _position_table(report) -> tuple[tuple[str, ...], list[list[object]]]:
    """One column per instrument surrendered by anyone (by vintage), then the sums."""
    vintages = {
        (v.kind == "offset", v.vintage or 0, v.instrument)
        for p in report.entities
        for v in p.surrendered
    }
    symbols = [symbol for _, _, symbol in sorted(vintages)]  # allowances by vintage, offsets
    rows = []
    for p in report.entities:
        by_symbol = {v.instrument: v.qty_t for v in p.surrendered}
        rows.append(
            [
                p.account,
                f"{p.obligation_t:,}",
                *(f"{by_symbol.get(x, 0):,}" for x in symbols),
                f"{p.surrendered_t:,}",
                f"{p.offsets_t:,}",
                f"{p.offset_limit_t:,}",
                f"{p.shortfall_t:,}",
                "-" if p.penalty_fen is None else cny(p.penalty_fen),
                _status(p, report.closed),
            ]
        )
    headers = (
        "account",
        "obligation t",
        *(f"{x} t" for x in symbols),
        "allowances t",
        "offsets t",
        "offset limit t",
        "shortfall t",
        "penalty CNY",
        "status",
    )
    return headers, rows


def _status(position, closed: bool) -> str:
    status = (
        ("complied" if closed else "covered")
        if not position.shortfall_t
        else ("SHORT" if closed else "short so far")
    )
    return status if position.reported else f"{status}, not reported"


def _compliance_totals(report) -> str:
    t = report.totals
    complied = "complied" if report.closed else "covered so far"
    short = "short" if report.closed else "short so far"
    unreported = f", {t.unreported:,} not reported" if t.unreported else ""
    penalty = (
        (cny(t.penalty_fen) + " CNY") if t.penalty_fen is not None else ("- (the year is open)")
    )
    return (
        f"totals: {t.entities:,} entities, {t.complied:,} {complied}, {t.short:,} {short}"
        f"{unreported}; obligation {t.obligation_t:,} t, allowances {t.surrendered_t:,} t, "
        f"offsets {t.offsets_t:,} t, shortfall {t.shortfall_t:,} t; total penalty {penalty}"
    )
