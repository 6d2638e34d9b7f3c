"""Seeded differential test of the registry: compiled engine against reference, event by event.

Random streams mix trading (submits, cancels, modifies, mass cancels, sessions) with every
registry command, valid and invalid, on small registry markets: few accounts (some never
opened, one a provincial authority, one the fee account), small balances so that
``INSUFFICIENT_*`` happens, a small resting-order capacity, a small key table so that
``REGISTRY_FULL`` happens, repeated idempotency keys (also under another command type),
frozen accounts and holdings, reports, surrenders and closed compliance years.  Both engines
must emit identical events for every command; every few hundred commands their state hashes,
account views and snapshots must be identical and both must pass ``check_invariants``.
Mid-stream the engines swap snapshots (each continues from the other's export).

``CETS_DIFF_COMMANDS`` sets the commands per seed, ``CETS_DIFF_SEEDS`` the number of seeds;
every run prints its seed and configuration.
"""

from __future__ import annotations

import os
import random

import pytest

from engine.core import limits
from engine.core import schema as s
from engine.core.compiled.engine import CompiledEngine
from engine.core.market import Capacity, Compliance, Fees, Instrument, MarketDefinition, validate
from engine.core.records import Codec
from engine.core.reference.engine import ReferenceEngine

COMMANDS = int(os.environ.get("CETS_DIFF_COMMANDS", "10000"))
SEEDS = int(os.environ.get("CETS_DIFF_SEEDS", "4"))
CHECK_EVERY = 250
SNAPSHOT_EVERY = 5_000
"""Snapshot bytes are compared less often: their size grows with the keys remembered."""
SYMBOLS = ["CEA-2023", "CEA-2025", "CCER"]
ACCOUNTS = 8
FEE_ACCOUNT = 0
FIRST_YEAR = 2021

# (fees buy/sell bps, registry_keys, penalty multiple): registry_keys are powers of two, the
# sizes at which the compiled key table's capacity equals registry_keys (see
# tests/test_registry_scenarios.py::test_key_table_holds_exactly_registry_keys).
CONFIGS = [((0, 0), 1 << 18, 5), ((30, 20), 1024, 7), ((125, 3), 512, 10), ((1, 9999), 32, 5)]


def registry_market(config: tuple, registry: bool = True) -> MarketDefinition:
    (buy_bps, sell_bps), keys, multiple = config
    return validate(
        MarketDefinition(
            name="differential registry",
            instruments=[
                Instrument(
                    symbol="CEA-2023", vintage=2023, reference_price_ticks=1_000, max_qty_t=500
                ),
                Instrument(
                    symbol="CEA-2025",
                    vintage=2025,
                    reference_price_ticks=2_000,
                    band_bps=500,
                    tick_ticks=5,
                    lot_t=10,
                    min_qty_t=10,
                    max_qty_t=500,
                ),
                Instrument(symbol="CCER", kind="offset", reference_price_ticks=800, max_qty_t=500),
            ],
            capacity=Capacity(
                accounts=ACCOUNTS, resting_orders=40, max_price_ticks=5_000, registry_keys=keys
            ),
            registry=registry,
            fee_account=FEE_ACCOUNT,
            fees=Fees(buy_bps=buy_bps, sell_bps=sell_bps),
            compliance=Compliance(first_year=FIRST_YEAR, penalty_multiple=multiple),
        )
    )


class RegistryStream:
    """Random trading and registry commands: mostly valid, every kind of mistake mixed in."""

    def __init__(self, seed: int, market: MarketDefinition) -> None:
        self.rng = random.Random(seed)
        self.specs = {ins.symbol: ins for ins in market.instruments}
        self.date = 20250101
        self.next_key = 1
        self.used_keys: list[int] = []
        self.seq = 0
        self.first_open_year = FIRST_YEAR
        """Compliance years drift forward through long runs, as years get closed."""

    # -- fields ----------------------------------------------------------------------------------
    def key(self) -> int:
        rng = self.rng
        roll = rng.random()
        if roll < 0.10 and self.used_keys:
            return rng.choice(self.used_keys)  # a retry, maybe under another command type
        if roll < 0.12:
            return rng.choice([0, -1, -(2**40)])
        self.next_key += rng.choice([1, 1, 1, 7, 1_000_003])
        self.used_keys = (self.used_keys + [self.next_key])[-50:]
        return self.next_key

    def account(self, wide: bool = False) -> int:
        """Mostly accounts 1-4; the fee account, the authority, unopened and unknown ones
        (``wide``: also numbers outside int32, which the record view turns into -1)."""
        rng = self.rng
        if rng.random() < 0.03:
            return rng.choice([-1, ACCOUNTS, 2**31, -(2**33)] if wide else [-1, ACCOUNTS])
        return rng.choices(range(ACCOUNTS), weights=[3, 10, 10, 10, 10, 4, 2, 2])[0]

    def symbol(self) -> str:
        rng = self.rng
        return rng.choice(SYMBOLS) if rng.random() > 0.03 else rng.choice(["NOPE", ""])

    def qty(self) -> int:
        rng = self.rng
        if rng.random() < 0.04:
            return rng.choice([0, -5, limits.QTY_MAX_T, limits.QTY_MAX_T + 1, 10**6])
        return rng.choice([1, 10, 20, 50, 100, 250, 500, 1_500])

    def year(self) -> int:
        rng = self.rng
        if rng.random() < 0.05:
            return rng.choice([FIRST_YEAR - 1, FIRST_YEAR + 16, 0, 2**16 + 2023])
        base = self.first_open_year
        return min(base + rng.choice([0, 1, 2, 2, 3, 3, 4, 5]), FIRST_YEAR + 15)

    # -- registry --------------------------------------------------------------------------------
    def registry(self) -> s.Command:  # noqa: C901 - one branch per command, flat
        rng = self.rng
        key, account = self.key(), self.account(wide=True)
        name = rng.choices(
            [
                "open",
                "deposit",
                "withdraw",
                "issue",
                "claw",
                "transfer",
                "freeze",
                "unfreeze",
                "freeze_account",
                "unfreeze_account",
                "cancel",
                "report",
                "surrender",
                "close",
            ],
            weights=[3, 10, 8, 6, 4, 8, 4, 4, 1.5, 4, 3, 8, 10, 1],
        )[0]
        if name == "close" and rng.random() > 3_000 / (3_000 + self.seq):
            name = "report"  # closes grow rarer, so that long runs keep open years
        if name == "open":
            kind = rng.choices([1, 2, 3, 4, 0, 5, 255], weights=[30, 30, 5, 3, 1, 1, 1])[0]
            sector = rng.choice([0, 1, 2, 3, 4, 9, 9, 5, 255])
            return s.OpenAccount(
                key=key,
                account=account,
                kind=kind,
                sector=sector,
                province=rng.choice([310000, 440000, 0]),
            )
        if name in ("deposit", "withdraw"):
            amount = rng.choice([10_000, 50_000, 200_000, 1_000_000])
            if rng.random() < 0.04:
                amount = rng.choice([0, -1, limits.CASH_MAX_FEN, limits.CASH_MAX_FEN + 1])
            cls = s.DepositCash if name == "deposit" else s.WithdrawCash
            return cls(key=key, account=account, amount_fen=amount)
        if name == "issue":
            return s.IssueAllowances(
                key=key,
                account=account,
                instrument=self.symbol(),
                qty_t=self.qty(),
                true_up=rng.random() < 0.3,
            )
        if name == "transfer":
            return s.TransferAllowances(
                key=key,
                account=account,
                to_account=self.account(),
                instrument=self.symbol(),
                qty_t=self.qty(),
            )
        if name in ("claw", "freeze", "unfreeze", "cancel"):
            cls = {
                "claw": s.ClawBack,
                "freeze": s.FreezeAllowances,
                "unfreeze": s.UnfreezeAllowances,
                "cancel": s.CancelAllowances,
            }[name]
            return cls(key=key, account=account, instrument=self.symbol(), qty_t=self.qty())
        if name in ("freeze_account", "unfreeze_account"):
            cls = s.FreezeAccount if name == "freeze_account" else s.UnfreezeAccount
            return cls(key=key, account=account)
        if name in ("report", "surrender") and rng.random() < 0.6:
            account = rng.choice([1, 2])  # the compliance entities of the opening
        if name == "report":
            gases = [rng.randint(0, 5_000), rng.choice([0, 0, 35, 480]), rng.choice([0, 0, 7, 95])]
            if rng.random() < 0.04:
                gases[rng.randrange(3)] = rng.choice([-1, limits.QTY_MAX_T + 1])
            gwp = rng.choices([1, 2, 3, 0, 4], weights=[3, 10, 3, 1, 1])[0]
            return s.ReportEmissions(
                key=key,
                account=account,
                year=self.year(),
                co2_t=gases[0],
                cf4_kg=gases[1],
                c2f6_kg=gases[2],
                gwp=gwp,
            )
        if name == "surrender":
            return s.SurrenderAllowances(
                key=key,
                account=account,
                instrument=self.symbol(),
                year=self.year(),
                qty_t=self.qty(),
            )
        price = rng.choice([6_000, 6_000, 123, 0, -1])
        year = self.year()
        if year == self.first_open_year and price > 0:
            self.first_open_year = min(year + 1, FIRST_YEAR + 11)
        return s.CloseComplianceYear(key=key, year=year, reference_price_ticks=price)

    # -- trading ---------------------------------------------------------------------------------
    def price(self, symbol: str) -> int:
        rng = self.rng
        spec = self.specs.get(symbol, self.specs["CEA-2023"])
        price = spec.reference_price_ticks + spec.tick_ticks * rng.randint(-25, 25)
        return price if rng.random() > 0.02 else rng.choice([0, price + 1, 10**6])

    def submit(self) -> s.SubmitOrder:
        rng = self.rng
        symbol = self.symbol() if rng.random() < 0.3 else rng.choice(SYMBOLS)
        order_type = rng.choices([1, 2, 3], weights=[80, 10, 10])[0]
        if order_type == 2:
            tif = rng.choice([3, 4]) if rng.random() > 0.02 else 1
        elif order_type == 3:
            tif = rng.choice([1, 2])
        else:
            tif = rng.choices([1, 2, 3, 4], weights=[50, 25, 15, 10])[0]
        spec = self.specs.get(symbol, self.specs["CEA-2023"])
        qty = spec.lot_t * rng.choice([1, 2, 5, 10, 20, 40])
        return s.SubmitOrder(
            order_id=rng.randint(1, 120),
            account=self.account(),
            instrument=symbol,
            side=rng.choice([1, 2]),
            qty_t=qty,
            price_ticks=self.price(symbol),
            order_type=order_type,
            tif=tif,
            stp=rng.choice([1, 2, 3]),
        )

    def session(self) -> s.Command:
        rng = self.rng
        symbol = rng.choice([s.ALL_INSTRUMENTS] * 4 + SYMBOLS + ["NOPE"])
        roll = rng.random()
        if roll < 0.60:
            self.date += rng.choice([1] * 9 + [0])
            return s.OpenSession(trading_date=self.date, instrument=symbol)
        if roll < 0.75:
            return s.CloseSession(trading_date=self.date, instrument=symbol)
        cls = s.HaltInstrument if roll < 0.82 else s.ResumeInstrument
        return cls(instrument=rng.choice(SYMBOLS))

    def next(self, seq: int) -> s.Command:
        rng = self.rng
        self.seq = seq
        roll = rng.random()
        if roll < 0.40:
            command = self.submit()
        elif roll < 0.50:
            command = s.CancelOrder(order_id=rng.randint(1, 120), account=self.account())
        elif roll < 0.60:
            symbol = rng.choice(SYMBOLS)
            spec = self.specs[symbol]
            command = s.ModifyOrder(
                order_id=rng.randint(1, 120),
                account=self.account(),
                price_ticks=self.price(symbol),
                qty_t=spec.lot_t * rng.choice([1, 3, 10, 30, 60]),
            )
        elif roll < 0.62:
            command = s.MassCancel(account=self.account(), instrument=rng.choice(SYMBOLS + [""]))
        elif roll < 0.65:
            command = self.session()
        else:
            command = self.registry()
        return _stamped(command, seq)

    def opening(self) -> list[s.Command]:
        """The fee account, most traders opened and funded, then the first session."""
        commands: list[s.Command] = [
            s.OpenAccount(key=self.fresh_key(), account=FEE_ACCOUNT, kind=s.AccountKind.FEE)
        ]
        kinds = {1: 1, 2: 1, 3: 2, 4: 2, 5: 3}  # accounts 6 and 7 stay unopened (for now)
        for account, kind in kinds.items():
            commands.append(
                s.OpenAccount(
                    key=self.fresh_key(),
                    account=account,
                    kind=kind,
                    sector=account % 5,
                    province=310000,
                )
            )
            amount = self.rng.choice([200_000, 3_000_000])
            commands.append(s.DepositCash(key=self.fresh_key(), account=account, amount_fen=amount))
            for symbol in SYMBOLS:
                commands.append(
                    s.IssueAllowances(
                        key=self.fresh_key(), account=account, instrument=symbol, qty_t=300
                    )
                )
        commands.append(s.OpenSession(trading_date=self.date))
        return [_stamped(c, i + 1) for i, c in enumerate(commands)]

    def fresh_key(self) -> int:
        self.next_key += 1
        return self.next_key


def _stamped(command: s.Command, seq: int) -> s.Command:
    fields = {name: getattr(command, name) for name in command.__struct_fields__}
    return type(command)(**{**fields, "seq": seq, "ts_ns": seq * 1_000})


def _assert_same_state(compiled, reference, where: str, snapshots: bool = True) -> None:
    compiled.check_invariants()
    reference.check_invariants()
    assert compiled.state_hash() == reference.state_hash(), where
    for account in range(-1, ACCOUNTS + 1):
        assert compiled.account(account) == reference.account(account), f"{where}: {account}"
    if snapshots:
        assert compiled.export_state() == reference.export_state(), f"{where}: snapshots differ"


def _run(seed: int, market: MarketDefinition, swap_at: set[int]) -> dict[str, int]:
    stream = RegistryStream(seed, market)
    compiled, reference = CompiledEngine(market), ReferenceEngine(market)
    counts: dict[str, int] = {}
    opening = stream.opening()
    for command in opening:
        assert compiled.apply(command) == reference.apply(command), f"seed {seed}: {command}"
    for seq in range(len(opening) + 1, len(opening) + COMMANDS + 1):
        command = stream.next(seq)
        fast, slow = compiled.apply(command), reference.apply(command)
        assert fast == slow, f"seed {seed}, seq {seq}: {command}"
        for event in slow:
            name = type(event).__name__
            if isinstance(event, (s.RegistryRejected, s.OrderRejected, s.ModifyRejected)):
                name += "." + event.reason.name
            counts[name] = counts.get(name, 0) + 1
        if seq % CHECK_EVERY == 0:
            where = f"seed {seed}, seq {seq}"
            _assert_same_state(compiled, reference, where, snapshots=seq % SNAPSHOT_EVERY == 0)
        if seq in swap_at:  # each engine continues from the other's snapshot
            compiled, reference = (
                CompiledEngine.from_state(market, reference.export_state()),
                ReferenceEngine.from_state(market, compiled.export_state()),
            )
            assert compiled.state_hash() == reference.state_hash(), f"seed {seed}: swap {seq}"
    _assert_same_state(compiled, reference, f"seed {seed}, end")
    return counts


@pytest.mark.parametrize("seed", range(SEEDS))
def test_registry_streams_agree_event_by_event(seed: int) -> None:
    config = CONFIGS[seed % len(CONFIGS)]
    print(f"ledger differential seed={seed} commands={COMMANDS} config={config}")
    market = registry_market(config)
    counts = _run(seed, market, swap_at={COMMANDS // 3, 2 * COMMANDS // 3})
    print(sorted(counts.items()))
    if config[1] <= 32:
        assert counts.get("RegistryRejected.REGISTRY_FULL", 0) > 0, "the key table never filled"
    if COMMANDS >= 2_000 and config[1] >= 1024:  # it exercises the ledger, not just refusals
        for name in (
            "TradeExecuted",
            "AllowancesSurrendered",
            "EmissionsReported",
            "DuplicateCommand",
            "OrderRejected.INSUFFICIENT_CASH",
            "OrderRejected.INSUFFICIENT_ALLOWANCES",
            "AllowancesTransferred",
            "RegistryRejected.INSUFFICIENT_ALLOWANCES",
        ):
            assert counts.get(name, 0) > 0, f"seed {seed}: the stream produced no {name}"


def test_registry_commands_with_the_registry_off_agree() -> None:
    """Pure-matching markets refuse registry commands (REGISTRY_DISABLED) identically."""
    seed = 1_000
    print(f"ledger differential (registry off) seed={seed} commands={COMMANDS // 4}")
    market = registry_market(CONFIGS[1], registry=False)
    stream = RegistryStream(seed, market)
    compiled, reference = CompiledEngine(market), ReferenceEngine(market)
    disabled = 0
    for seq in range(1, COMMANDS // 4 + 1):
        command = stream.next(seq) if seq > 1 else _stamped(s.OpenSession(trading_date=2), 1)
        fast, slow = compiled.apply(command), reference.apply(command)
        assert fast == slow, f"seed {seed}, seq {seq}: {command}"
        disabled += sum(
            isinstance(e, s.RegistryRejected) and e.reason == s.RejectReason.REGISTRY_DISABLED
            for e in slow
        )
    compiled.check_invariants()
    reference.check_invariants()
    assert compiled.state_hash() == reference.state_hash()
    assert compiled.account(1) is None and reference.account(1) is None
    assert disabled > 0 or COMMANDS < 400


@pytest.mark.parametrize("seed", range(2))
def test_registry_record_batches_agree_with_the_typed_path(seed: int) -> None:
    """The log's path (records in one compiled loop) equals the reference's typed path."""
    config = CONFIGS[(seed + 1) % len(CONFIGS)]
    print(f"ledger differential batch seed={100 + seed} config={config}")
    market = registry_market(config)
    stream = RegistryStream(100 + seed, market)
    commands = stream.opening()
    commands += [stream.next(seq) for seq in range(len(commands) + 1, COMMANDS // 2)]
    codec = Codec(market)
    compiled, reference = CompiledEngine(market), ReferenceEngine(market)
    fast = compiled.apply_records(codec.encode_commands(commands))
    slow = codec.encode_events(reference.apply_all(commands))
    assert fast.tobytes() == slow.tobytes()
    assert compiled.state_hash() == reference.state_hash()
    reference.check_invariants()
    compiled.check_invariants()
