"""Every benchmark and the demo also run here at a tiny size, so they cannot rot.

Nothing here asserts a speed (speed is measured in ``bench/``); these tests check that the
benchmarks run and that their paths agree on the answer.
"""

from __future__ import annotations

import json
import re

import pytest

from bench import cli
from engine.durable.journal import Durability
from gateway import cli as cets


def test_bench_core_tiny_paths_agree(tmp_path, capsys) -> None:
    out = tmp_path / "core.json"
    assert cli.main(["core", "--size", "tiny", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert {r["workload"] for r in results} == set(cli.WORKLOAD_NAMES)
    for result in results:
        assert result["hashes_equal"], result
        assert len({p["events_hash"] for p in result["paths"]}) == 1
    assert "event hashes equal across paths: True" in capsys.readouterr().out


def test_bench_core_choices_are_the_workloads() -> None:
    from bench import workloads

    assert list(cli.WORKLOAD_NAMES) == list(workloads.WORKLOADS)


@pytest.mark.parametrize("mode", [[], ["--embedded"]], ids=["gateway", "embedded"])
def test_demo_runs_end_to_end_and_audits(tmp_path, capsys, mode) -> None:
    data_dir = tmp_path / "demo"
    code = cets.main(
        [
            "demo",
            "--data-dir",
            str(data_dir),
            "--orders",
            "600",
            "--scale",
            "0.05",
            "--days",
            "2",
            *mode,
        ]
    )
    output = capsys.readouterr().out
    assert code == 0, output
    assert "every batch matches its recorded digest" in output
    assert "compliance 2024" in output and "CEA-2024" in output
    # The simulation only sends orders that can be met.  Embedded, the engine meets them in the
    # order they were made, as the simulation's view of the book did: nothing is refused.
    # Through the gateway the firms' requests interleave, and a hit-quote order may find its
    # quote taken or moved by another firm's order first: those, and only those, are refused.
    rejected = re.search(r"accepted \([\d,]+ hit-quote\), (.*?) ?rejected", output)
    assert rejected, output
    if mode:
        assert rejected[1] == "0", output
    elif rejected[1] != "0":
        reasons = re.fullmatch(r"[\d,]+ \((.*)\)", rejected[1])[1].split(", ")
        assert {r.split()[0] for r in reasons} <= {"QUOTE_NOT_FOUND", "QUOTE_BEYOND_BEST_LEVELS"}, (
            output
        )
    assert "auctions          1 cleared" in output and "composite price" in output
    blocks = re.search(r"block offers +([\d,]+) posted, ([\d,]+) accepted, 0 refused", output)
    assert blocks and int(blocks[1].replace(",", "")) > 0, output
    assert blocks[1] == blocks[2], output
    hit_quotes = re.search(r"accepted \(([\d,]+) hit-quote\)", output)
    refused = rejected[1].split()[0].replace(",", "")  # every refusal is a hit-quote's
    assert int(hit_quotes[1].replace(",", "")) + (0 if mode else int(refused)) > 0, output
    assert (data_dir / "log").is_dir()


def test_bench_journal_tiny(tmp_path, capsys) -> None:
    out = tmp_path / "journal.json"
    assert cli.main(["journal", "--messages", "1500", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    policies = {(a["policy"], a["batch_size"]) for a in results["append"]}
    assert policies == {(p, b) for p in ("batch", "interval", "none") for b in (1, 100, 1000)}
    assert all(a["commands"] > 0 and a["commands_per_s"] > 0 for a in results["append"])
    assert results["replay_events_per_s"] > 0 and results["audit_events_per_s"] > 0
    assert "recovery with full audit" in capsys.readouterr().out


def test_segment_roll_script_tiny(tmp_path, capsys) -> None:
    """``python -m bench.segment_roll`` (a measurement script beside ``cets bench``)."""
    from bench import segment_roll

    segment_roll.main(["--dir", str(tmp_path), "--segment-mib", "0.0625", "--rolls", "1"])
    out = capsys.readouterr().out
    assert "1 rolls" in out and "roll batches: " in out and "journal fdatasync" in out
    assert list(tmp_path.iterdir()) == []  # its scratch directory removed


def test_bench_carbon_tiny(tmp_path, capsys) -> None:
    out = tmp_path / "carbon.json"
    assert cli.main(["carbon", "--size", "tiny", "--json", str(out)]) == 0
    year, rush = json.loads(out.read_text())["results"]
    assert year["hashes_equal"] is True and year["days"] == 242
    assert rush["commands"] > 0 and rush["hashes_equal"] is None
    assert year["complied"] + year["short"] == 3_378
    assert "compiled and reference event hashes equal: True" in capsys.readouterr().out


def test_bench_gateway_tiny_reports_throughput_latency_and_floor(tmp_path, capsys) -> None:
    out = tmp_path / "gateway.json"
    assert cli.main(["gateway", "--size", "tiny", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    throughput, latency, floor = results["throughput"], results["latency"], results["floor"]
    assert throughput["acks"] == throughput["orders"] > 0 and throughput["rejects"] == 0
    assert latency["acks"] == latency["orders"] > 0 and latency["sync_us_p50"] > 0
    assert floor["acks"] == floor["orders"] == latency["orders"]
    assert 0 < floor["latency_us_p50"] <= floor["latency_us_p99"] <= floor["latency_us_max"]
    inprocess = results["inprocess"]
    assert inprocess["orders"] == 4 * 250 * 5 and 0 < inprocess["intake_us_per_order"]
    assert inprocess["total_us_per_order"] == pytest.approx(
        inprocess["intake_us_per_order"] + inprocess["flush_us_per_order"], abs=0.02
    )
    assert inprocess["out_bytes_per_order"] > 0
    assert "do-nothing echo server" in capsys.readouterr().out


def test_bench_gateway_runs_the_server_under_the_durability_asked_for(tmp_path) -> None:
    """``--durability none``: the same runs with no log sync (what the storage's sync costs)."""
    out = tmp_path / "gateway.json"
    assert cli.main(["gateway", "--size", "tiny", "--durability", "none", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    for part in ("throughput", "latency", "fix"):
        assert results[part]["durability"] == "none", part
    assert results["throughput"]["acks"] == results["throughput"]["orders"] > 0
    assert results["latency"]["sync_us_p50"] == 0  # no fdatasync was timed
    assert cli.DURABILITY_POLICIES == tuple(policy.value for policy in Durability)


def test_bench_all_writes_every_layer_to_its_json(tmp_path) -> None:
    out = tmp_path / "all.json"
    assert cli.main(["all", "--size", "tiny", "--json", str(out)]) == 0
    layers = json.loads(out.read_text())
    assert list(layers) == ["core", "journal", "carbon", "gateway"]
    assert all(r["hashes_equal"] for r in layers["core"]["results"])
    assert layers["journal"]["results"] and layers["carbon"]["results"]
    assert layers["gateway"]["throughput"]["acks"] == layers["gateway"]["throughput"]["orders"]


def test_cets_finds_every_subcommand(capsys) -> None:
    """``cets`` hosts the gateway's and replay's commands and finds ``bench`` by entry point."""
    with pytest.raises(SystemExit):
        cets.main(["--help"])
    listed = capsys.readouterr().out
    for command in ("demo", "serve", "users", "replay", "bench"):
        assert command in listed
    with pytest.raises(SystemExit) as exit_info:
        cets.main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "journal" in capsys.readouterr().out
