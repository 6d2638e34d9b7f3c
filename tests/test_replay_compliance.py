"""``compliance``: a registry log written by the live exchange - allocations, trades that settle
T+1, emission reports (one corrected, one of an aluminium smelter with CF4 and C2F6), surrenders
of two vintages and of offsets within the 5 % limit, refused surrenders, a defaulter - and the
report's figures checked against the ``ComplianceReported`` events the live engine emitted at
the close; an open year against what closing it would report; ``--json``; exit codes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import msgspec
import numpy as np
import pytest

from engine.core import records as r
from engine.core import schema as s
from replay import errors
from replay.cli import main
from replay.compliance import ComplianceReport, ComplianceYear
from replay.datadir import open_data_dir
from replay.reports import scan_events
from tests.test_replay_cli import assert_one_line_error, call
from tests.test_replay_support import small_market, write_log

K = s.AccountKind
FEE, POWER, STEEL, SMELTER, DEFAULTER, INVESTOR, SILENT, LATE = range(8)
"""Accounts: the fee account, four reporting entities, an investor, an entity that never
reports, and an entity opened after 2024 closed."""
CLOSED, OPEN = 2024, 2025
PRICE = 6000
"""Reference price (fen per tonne) of the close of 2024."""


def registry_market():
    market = small_market(registry=True)
    fees = msgspec.structs.replace(market.fees, buy_bps=5, sell_bps=5)
    return msgspec.structs.replace(market, fees=fees)


def scenario() -> list[list[s.Command]]:
    """Two compliance years: 2024 closes at the end, 2025 stays open."""
    keys = itertools.count(1)

    def reg(cls, **fields):
        return cls(key=next(keys), **fields)

    opening = [reg(s.OpenAccount, account=FEE, kind=K.FEE)]
    for account, sector, province in (
        (POWER, s.Sector.POWER, 310000),
        (STEEL, s.Sector.STEEL, 130000),
        (SMELTER, s.Sector.ALUMINIUM, 150000),
        (DEFAULTER, s.Sector.CEMENT, 440000),
        (SILENT, s.Sector.OTHER, 320000),
    ):
        opening.append(
            reg(s.OpenAccount, account=account, kind=K.COMPLIANCE, sector=sector, province=province)
        )
    opening.append(reg(s.OpenAccount, account=INVESTOR, kind=K.INVESTOR))
    opening += [reg(s.DepositCash, account=a, amount_fen=10**10) for a in (POWER, SMELTER)]
    for account, symbol, qty in (
        (POWER, "CEA-2024", 90_000),
        (POWER, "CEA-2025", 10_000),
        (STEEL, "CEA-2024", 55_000),
        (STEEL, "CEA-2025", 30_000),
        (SMELTER, "CEA-2024", 31_000),
        (DEFAULTER, "CEA-2024", 40_000),
        (INVESTOR, "CCER", 5_000),
    ):
        opening.append(reg(s.IssueAllowances, account=account, instrument=symbol, qty_t=qty))

    def order(order_id, account, symbol, side, qty, price):
        return s.SubmitOrder(
            order_id=order_id,
            account=account,
            instrument=symbol,
            side=side,
            qty_t=qty,
            price_ticks=price,
        )

    trading = [  # the defaulter sells, the power plant buys; the smelter buys offsets
        s.OpenSession(trading_date=20250102),
        order(1, DEFAULTER, "CEA-2024", s.Side.SELL, 10_000, 6000),
        order(2, POWER, "CEA-2024", s.Side.BUY, 10_000, 6010),
        order(3, INVESTOR, "CCER", s.Side.SELL, 1_200, 5005),
        order(4, SMELTER, "CCER", s.Side.BUY, 1_200, 5005),
        s.CloseSession(trading_date=20250102),
        s.OpenSession(trading_date=20250103),  # T+1: the purchases become tradable
        s.CloseSession(trading_date=20250103),
    ]

    def report(account, year, co2, cf4=0, c2f6=0, gwp=s.GwpVersion.AR5):
        return reg(
            s.ReportEmissions,
            account=account,
            year=year,
            co2_t=co2,
            cf4_kg=cf4,
            c2f6_kg=c2f6,
            gwp=gwp,
        )

    def surrender(account, symbol, year, qty):
        return reg(s.SurrenderAllowances, account=account, instrument=symbol, year=year, qty_t=qty)

    year_2024 = [
        report(POWER, CLOSED, 100_000),
        report(STEEL, CLOSED, 60_000),
        report(STEEL, CLOSED, 50_000),  # a corrected report replaces the first
        report(SMELTER, CLOSED, 20_000, cf4=1_500, c2f6=200),  # 32,165 tCO2e (AR5)
        report(DEFAULTER, CLOSED, 80_000),
        surrender(POWER, "CEA-2024", CLOSED, 60_000),
        surrender(POWER, "CEA-2024", CLOSED, 40_000),
        surrender(POWER, "CEA-2025", CLOSED, 1_000),  # VINTAGE_NOT_ELIGIBLE
        surrender(STEEL, "CEA-2024", CLOSED, 50_000),
        surrender(SMELTER, "CCER", CLOSED, 2_000),  # OFFSET_LIMIT_EXCEEDED: 5 % is 1,608 t
        surrender(SMELTER, "CEA-2024", CLOSED, 31_000),
        surrender(SMELTER, "CCER", CLOSED, 1_165),
        surrender(DEFAULTER, "CEA-2024", CLOSED, 25_000),  # 55,000 t short
    ]
    year_2025 = [
        report(STEEL, OPEN, 60_000),
        surrender(STEEL, "CEA-2024", OPEN, 5_000),
        surrender(STEEL, "CEA-2025", OPEN, 20_000),
        report(SMELTER, OPEN, 18_000, cf4=1_000, c2f6=100, gwp=s.GwpVersion.AR6),
        surrender(SMELTER, "CCER", OPEN, 35),
    ]
    closing = [
        reg(s.CloseComplianceYear, year=CLOSED, reference_price_ticks=PRICE),
        surrender(DEFAULTER, "CEA-2024", CLOSED, 1_000),  # YEAR_CLOSED
        reg(s.OpenAccount, account=LATE, kind=K.COMPLIANCE, sector=s.Sector.POWER),
    ]
    return [opening, trading[:3], trading[3:], year_2024[:7], year_2024[7:], year_2025, closing]


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list]]:
    """``live``: the scenario; ``closed-2025``: the same, then 2025 closed too."""
    root = tmp_path_factory.mktemp("replay-compliance")
    market = registry_market()
    close_2025 = s.CloseComplianceYear(key=10**6, year=OPEN, reference_price_ticks=7000)
    out = {}
    for name, extra in (("live", []), ("closed-2025", [[close_2025]])):
        events: list = []
        write_log(root / name, scenario() + extra, market, events)
        out[name] = (root / name, events)
    return out


def report_of(path: Path, year: int) -> ComplianceYear:
    data = open_data_dir(path)
    report = ComplianceReport(data, year)
    scan = scan_events(data, [report])
    return report.result(scan.reader.last_seq)


def test_the_scenario_ran_as_intended(logs) -> None:
    """The refusals the scenario means to provoke, and nothing else refused."""
    _, events = logs["live"]
    refused = [e.reason for e in events if isinstance(e, s.RegistryRejected | s.OrderRejected)]
    assert refused == [
        s.RejectReason.VINTAGE_NOT_ELIGIBLE,
        s.RejectReason.OFFSET_LIMIT_EXCEEDED,
        s.RejectReason.YEAR_CLOSED,
    ]
    assert sum(isinstance(e, s.TradeExecuted) for e in events) == 2


def test_a_closed_year_agrees_with_the_live_compliance_reports(logs) -> None:
    path, events = logs["live"]
    result = report_of(path, CLOSED)
    live = [e for e in events if isinstance(e, s.ComplianceReported) and e.year == CLOSED]
    (closed,) = [e for e in events if isinstance(e, s.ComplianceYearClosed)]
    assert result.closed and result.closed_seq == closed.seq and result.discrepancies == []
    assert result.reference_price_ticks == PRICE and result.penalty_multiple == 5
    assert [p.account for p in result.entities] == [e.account for e in live]
    assert LATE not in [p.account for p in result.entities]  # opened after the close
    for p, e in zip(result.entities, live, strict=True):
        assert (p.obligation_t, p.surrendered_t, p.offsets_t, p.shortfall_t, p.penalty_fen) == (
            e.obligation_t,
            e.surrendered_t,
            e.offsets_t,
            e.shortfall_t,
            e.penalty_fen,
        )
    reports = {
        e.account: e
        for e in events  # the latest report of each entity
        if isinstance(e, s.EmissionsReported) and e.year == CLOSED
    }
    for p in result.entities:
        e = reports.get(p.account)
        assert p.reported == (e is not None)
        if e is not None:
            assert (p.report_seq, p.co2_t, p.cf4_kg, p.c2f6_kg, p.gwp, p.obligation_t) == (
                e.seq,
                e.co2_t,
                e.cf4_kg,
                e.c2f6_kg,
                e.gwp,
                e.obligation_t,
            )
        surrendered: dict[str, int] = {}
        for e in events:
            if isinstance(e, s.AllowancesSurrendered) and (e.account, e.year) == (
                p.account,
                CLOSED,
            ):
                surrendered[e.instrument] = surrendered.get(e.instrument, 0) + e.qty_t
        assert {v.instrument: v.qty_t for v in p.surrendered} == surrendered
    assert (closed.entities, result.totals.entities) == (5, 5)


def test_the_figures_of_the_closed_year(logs) -> None:
    """The scenario's numbers worked out by hand (docs/LEDGER.md)."""
    result = report_of(logs["live"][0], CLOSED)
    by_account = {p.account: p for p in result.entities}
    smelter = by_account[SMELTER]
    assert smelter.sector == s.Sector.ALUMINIUM and smelter.gwp == s.GwpVersion.AR5
    assert smelter.obligation_t == 20_000 + (1_500 * 6_630 + 200 * 11_100 + 500) // 1000 == 32_165
    assert smelter.offset_limit_t == 1_608 and smelter.offsets_t == 1_165
    assert [(v.instrument, v.kind, v.vintage, v.qty_t) for v in smelter.surrendered] == [
        ("CEA-2024", "allowance", 2024, 31_000),
        ("CCER", "offset", None, 1_165),
    ]
    assert smelter.shortfall_t == 0 and smelter.penalty_fen == 0
    assert by_account[STEEL].obligation_t == 50_000  # the corrected report
    assert by_account[POWER].surrendered_t == 100_000  # 10,000 t of it bought, settled T+1
    defaulter = by_account[DEFAULTER]
    assert defaulter.shortfall_t == 55_000 and defaulter.penalty_fen == 55_000 * PRICE * 5
    assert not by_account[SILENT].reported and by_account[SILENT].obligation_t == 0
    t = result.totals
    assert (t.entities, t.complied, t.short, t.unreported) == (5, 4, 1, 1)
    assert t.penalty_fen == 55_000 * PRICE * 5 and t.shortfall_t == 55_000
    assert t.offsets_t == 1_165 and t.surrendered_t == 206_000


def test_an_open_year_shows_the_shortfall_so_far(logs) -> None:
    """What the report shows for an open year is what closing it would report."""
    result = report_of(logs["live"][0], OPEN)
    assert not result.closed and result.closed_seq is None and result.penalty_multiple == 5
    assert result.reference_price_ticks is None and result.totals.penalty_fen is None
    assert all(p.penalty_fen is None for p in result.entities)
    assert LATE in [p.account for p in result.entities]  # the year is open to new entities
    _, events = logs["closed-2025"]
    live = [e for e in events if isinstance(e, s.ComplianceReported) and e.year == OPEN]
    assert [
        (p.account, p.obligation_t, p.surrendered_t, p.offsets_t, p.shortfall_t)
        for p in result.entities
    ] == [(e.account, e.obligation_t, e.surrendered_t, e.offsets_t, e.shortfall_t) for e in live]
    steel = next(p for p in result.entities if p.account == STEEL)
    assert [(v.instrument, v.qty_t) for v in steel.surrendered] == [
        ("CEA-2024", 5_000),
        ("CEA-2025", 20_000),
    ]
    assert steel.shortfall_t == 35_000 and result.totals.short == 2  # steel and the smelter
    closed = report_of(logs["closed-2025"][0], OPEN)
    assert closed.closed and closed.discrepancies == []
    assert closed.totals.penalty_fen == sum(e.penalty_fen for e in live) > 0


def test_text_names_the_state_of_the_year_and_the_totals(logs, capsysbinary) -> None:
    path = str(logs["live"][0])
    code, out, err = call(capsysbinary, "compliance", path, "--year", str(CLOSED))
    text = out.decode()
    assert code == errors.EXIT_OK and err == ""
    assert text.startswith(f"compliance year {CLOSED}: CLOSED at seq ")
    assert "CEA-2024 t" in text and "CCER t" in text and "CEA-2025 t" not in text
    assert "SHORT" in text and "not reported" in text
    assert text.rstrip().endswith(
        "totals: 5 entities, 4 complied, 1 short, 1 not reported; obligation 262,165 t, "
        "allowances 206,000 t, offsets 1,165 t, shortfall 55,000 t; total penalty "
        "16,500,000.00 CNY"
    )
    code, out, _ = call(capsysbinary, "compliance", path, "--year", str(OPEN), "--quiet")
    text = out.decode()
    assert code == errors.EXIT_OK and text.startswith(f"compliance year {OPEN}: OPEN")
    assert "short so far" in text and "total penalty - (the year is open)" in text
    header = next(line for line in text.splitlines() if line.startswith("account  obligation"))
    assert header.index("CEA-2024 t") < header.index("CEA-2025 t") < header.index("CCER t")


def test_json_output_decodes_into_the_result_struct(logs, capsysbinary) -> None:
    path = logs["live"][0]
    for year in (CLOSED, OPEN):
        code, out, err = call(capsysbinary, "compliance", str(path), "--year", str(year), "--json")
        assert code == errors.EXIT_OK and err == ""  # no progress bar: not a terminal
        result = msgspec.json.decode(out, type=ComplianceYear)
        assert result == report_of(path, year)
        assert msgspec.json.encode(result) + b"\n" == out
        plain = json.loads(out)
        assert plain["closed"] == (year == CLOSED) and plain["year"] == year


def test_exit_codes_and_one_line_errors(logs, tmp_path: Path, capsysbinary) -> None:
    path = str(logs["live"][0])
    for year in ("2018", "2035", "0"):  # the registry holds 2019 … 2034
        code, out, err = call(capsysbinary, "compliance", path, "--year", year)
        assert code == errors.EXIT_USAGE and out == b""
        assert_one_line_error(err, f"year {year} is not a compliance year", "2019 … 2034")
    with pytest.raises(SystemExit) as exited:
        main(["compliance", path, "--year", "last"])
    assert exited.value.code == errors.EXIT_USAGE
    with pytest.raises(SystemExit) as exited:
        main(["compliance", path])  # --year is required
    assert exited.value.code == errors.EXIT_USAGE
    code, out, err = call(capsysbinary, "compliance", str(tmp_path / "nope"), "--year", "2024")
    assert code == errors.EXIT_UNREADABLE and out == b""
    assert_one_line_error(err, "no such directory")
    plain = small_market(registry=False)
    write_log(tmp_path / "plain", [[s.OpenSession(trading_date=20250102)]], plain)
    code, out, err = call(capsysbinary, "compliance", str(tmp_path / "plain"), "--year", "2024")
    assert code == errors.EXIT_USAGE and out == b""
    assert_one_line_error(err, "runs without a registry")


class _Forged(ComplianceReport):
    """Sees every ``ComplianceReported`` of the defaulter with a penalty 1 fen too high."""

    def take(self, rows: np.ndarray) -> None:
        forged = (rows[:, r.E_KIND] == r.EV_COMPLIANCE) & (rows[:, r.E_ACCOUNT] == DEFAULTER)
        rows[forged, r.E_X4] += 1
        super().take(rows)


def test_a_close_that_disagrees_with_the_surrenders_is_a_finding(
    logs, capsysbinary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("replay.compliance.ComplianceReport", _Forged)
    path = str(logs["live"][0])
    code, out, _ = call(capsysbinary, "compliance", path, "--year", str(CLOSED))
    assert code == errors.EXIT_FINDING
    expected = 55_000 * PRICE * 5
    assert (
        out.decode()
        .rstrip()
        .endswith(
            f"DISCREPANCY account {DEFAULTER}: penalty_fen {expected + 1:,} recorded at the close, "
            f"{expected:,} from the reports and surrenders"
        )
    )
    code, _, _ = call(capsysbinary, "compliance", path, "--year", str(OPEN))
    assert code == errors.EXIT_OK  # an open year has no close to disagree with
