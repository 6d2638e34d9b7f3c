"""Golden scenarios: small, human-readable command lists (``tests/golden/*.toml``) are written
to a log by the real sequencer, and the replay tool's reports on it are compared with the
committed expected outputs (``tests/golden/<scenario>/<report>.txt``).

A change in behaviour - of the engine or of a report - shows up as a reviewed diff.  To accept
one, regenerate with ``CETS_REGEN_GOLDEN=1 pytest tests/test_replay_golden.py`` and review the
diff of ``tests/golden``; nothing is ever regenerated without that flag.
"""

from __future__ import annotations

import enum
import itertools
import os
from pathlib import Path

import msgspec
import pytest

from engine.core import market as mk
from engine.core import schema as s
from replay.cli import main
from replay.render import parse_time
from tests.test_replay_support import write_log

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("CETS_REGEN_GOLDEN") == "1"
SCENARIOS = sorted(path.stem for path in GOLDEN.glob("*.toml"))
COMMANDS = {cls.__name__: cls for cls in s.COMMAND_TYPES + s.REGISTRY_COMMAND_TYPES}


class Batch(msgspec.Struct, forbid_unknown_fields=True):
    time: str
    commands: list[dict]


class Scenario(msgspec.Struct, forbid_unknown_fields=True):
    market: mk.MarketDefinition
    batch: list[Batch]
    reports: dict[str, list[str]]


def typed_command(fields: dict) -> s.Command:
    """A scenario's command table -> its typed command (enum members given by name)."""
    fields = dict(fields)
    cls = COMMANDS[fields.pop("type")]
    for field in msgspec.structs.fields(cls):
        value, kind = fields.get(field.name), field.type
        if isinstance(value, str) and isinstance(kind, type) and issubclass(kind, enum.IntEnum):
            fields[field.name] = kind[value]
    return msgspec.convert(fields, cls)


def load(name: str) -> Scenario:
    scenario = msgspec.toml.decode((GOLDEN / f"{name}.toml").read_bytes(), type=Scenario)
    mk.validate(scenario.market)
    return scenario


def build(name: str, path: Path) -> Scenario:
    scenario = load(name)
    times = iter([parse_time(batch.time) for batch in scenario.batch])
    batches = [[typed_command(c) for c in batch.commands] for batch in scenario.batch]
    write_log(path, batches, scenario.market, clock=times.__next__)
    return scenario


def report_text(capsysbinary, data_dir: Path, arguments: list[str]) -> str:
    code = main([arguments[0], str(data_dir), *arguments[1:]])
    captured = capsysbinary.readouterr()
    assert code == 0, captured.err.decode()
    assert captured.err == b""
    return captured.out.decode()


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden_reports(tmp_path: Path, capsysbinary, name: str) -> None:
    scenario = build(name, tmp_path)
    expected_dir = GOLDEN / name
    if REGENERATE:
        expected_dir.mkdir(exist_ok=True)
    for report, arguments in scenario.reports.items():
        text = report_text(capsysbinary, tmp_path, arguments)
        expected = expected_dir / f"{report}.txt"
        if REGENERATE:
            expected.write_text(text)
            continue
        assert expected.exists(), f"{expected} missing: regenerate with CETS_REGEN_GOLDEN=1"
        assert text == expected.read_text(), f"{name}/{report} differs from {expected}"
    if REGENERATE:  # an explicit developer action: fail so the diff is reviewed before a rerun
        pytest.fail(f"regenerated {expected_dir}: review the diff, then run without the flag")


def test_every_expected_output_belongs_to_a_report() -> None:
    for name in SCENARIOS:
        reports = set(load(name).reports)
        files = {path.stem for path in (GOLDEN / name).glob("*.txt")}
        assert files == reports, f"{name}: stale or missing golden files"


def test_the_scenario_log_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    for name in SCENARIOS:
        build(name, tmp_path / name / "a")
        build(name, tmp_path / name / "b")
        for a, b in itertools.zip_longest(
            sorted((tmp_path / name / "a" / "log").glob("*.seg")),
            sorted((tmp_path / name / "b" / "log").glob("*.seg")),
        ):
            assert a.read_bytes() == b.read_bytes(), name
