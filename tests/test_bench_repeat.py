"""``cets bench … --repeat N``: every run kept, and every figure's best and median.

Tiny sizes; nothing here asserts a speed, only the shape of what is reported.
"""

from __future__ import annotations

import json
import statistics

import msgspec
import pytest

from bench import cli, repeats


class _Path(msgspec.Struct):
    path: str
    seconds: float
    messages_per_s: float
    events_hash: str


class _Workload(msgspec.Struct):
    workload: str
    trades: int
    hashes_equal: bool
    paths: list[_Path]
    cost_ratio: float
    reference_seconds: float | None = None


def _payload(rate: float, seconds: float) -> dict:
    paths = [_Path("lean API", seconds, rate, "ab"), _Path("batch", seconds / 10, rate * 10, "ab")]
    return {
        "results": [_Workload("liquid", 7, True, paths, 2.0 * seconds)],
        "latency": {"offered_per_s": 1000, "latency_us_p99": seconds * 1e6, "orders": 5},
        "append": [{"policy": "batch", "batch_size": 1, "commands_per_s": rate}] * 2,
    }


def test_figures_name_each_leaf_and_take_best_and_median_by_direction() -> None:
    runs = [_payload(100.0, 3.0), _payload(300.0, 1.0), _payload(200.0, 2.0)]
    table = repeats.figures(runs)
    lean = table["results/liquid/paths/lean API/messages_per_s"]
    assert lean == repeats.Figure("higher", 300.0, 200.0, [100.0, 300.0, 200.0])
    assert table["results/liquid/paths/batch/seconds"].better == "lower"
    assert table["results/liquid/paths/batch/seconds"].best == pytest.approx(0.1)
    assert table["results/liquid/cost_ratio"].best == 2.0  # a cost: the lowest is best
    latency = table["latency/latency_us_p99"]
    assert (latency.better, latency.best, latency.median) == ("lower", 1e6, 2e6)
    # two elements with one label are told apart by their index
    assert table["append/0/commands_per_s"].runs == table["append/1/commands_per_s"].runs
    # counts, flags, hashes, the offered rate and absent values are not figures
    for name in ("trades", "hashes_equal", "events_hash", "offered_per_s", "orders"):
        assert not any(path.endswith(name) for path in table), name
    assert not any("reference_seconds" in path for path in table)


@pytest.mark.parametrize(
    ("name", "better"),
    [
        ("messages_per_s", "higher"),
        ("speedup_batch_vs_reference", "higher"),
        ("lean_vs_peer", "higher"),
        ("recovery_seconds", "lower"),
        ("first_ack_s", "lower"),
        ("server_cpu_us_per_order", "lower"),
        ("sync_us_p99", "lower"),
        ("full_engine_cost_ratio", "lower"),
        ("offered_per_s", None),
        ("out_bytes_per_order", None),
        ("mean_batch", None),
    ],
)
def test_which_way_is_better_is_read_off_the_name(name, better) -> None:
    assert repeats.better(name) == better


def test_bench_core_repeat_keeps_every_run_with_best_and_median(tmp_path, capsys) -> None:
    out = tmp_path / "core.json"
    argv = ["core", "--messages", "400", "--workload", "liquid", "--repeat", "3"]
    assert cli.main([*argv, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["repeat"] == 3 and len(data["runs"]) == 3
    assert data["results"] == data["runs"][0]["results"]  # a single run's shape, kept
    assert all(len(run["load"]) == 3 for run in data["runs"])
    assert len(data["machine"]["load"]) == 3
    rates = [
        next(p for p in run["results"][0]["paths"] if p["path"] == "lean API")["messages_per_s"]
        for run in data["runs"]
    ]
    lean = data["figures"]["results/liquid/paths/lean API/messages_per_s"]
    assert lean == {
        "better": "higher",
        "best": max(rates),
        "median": statistics.median(rates),
        "runs": rates,
    }
    printed = capsys.readouterr().out
    assert "run 3 of 3" in printed and "best and median of 3 runs" in printed
    assert "results/liquid/paths/lean API/messages_per_s" in printed
    assert "results/liquid/paths/lean API/seconds" not in printed  # left to the JSON


def test_bench_journal_repeat_once_by_default(tmp_path, capsys) -> None:
    out = tmp_path / "journal.json"
    assert cli.main(["journal", "--messages", "300", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["repeat"] == 1 and data["runs"] == [
        {"results": data["results"], "load": data["load"]}
    ]
    figure = data["figures"]["results/append/batch 100/commands_per_s"]
    assert figure["best"] == figure["median"] == figure["runs"][0] > 0
    assert "results/audit_events_per_s" in data["figures"]
    assert "best and median" not in capsys.readouterr().out


def test_repeat_must_be_positive(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["core", "--size", "tiny", "--repeat", "0"])
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_the_machine_line_carries_the_load() -> None:
    from bench import machine

    described = machine.describe()
    assert len(described.load) == 3 and all(value >= 0 for value in described.load)
    quiet = msgspec.structs.replace(described, load=(0.5, 1.25, 2.0))
    assert machine.line(quiet).endswith("; load 0.50 1.25 2.00 (1/5/15 min)")
    assert "load" not in machine.line(msgspec.structs.replace(described, load=()))
