"""Every benchmark and the demo also run here at a tiny size, so they cannot rot.

Nothing here asserts a speed (speed is measured in ``bench/``); these tests check that the
benchmarks run and that their paths agree on the answer.
"""

from __future__ import annotations

import json

import pytest

from bench import cli


def test_bench_core_tiny_paths_agree(tmp_path, capsys) -> None:
    out = tmp_path / "core.json"
    assert cli.main(["bench", "core", "--size", "tiny", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert {r["workload"] for r in results} == {"liquid", "deep", "volatile"}
    for result in results:
        assert result["hashes_equal"], result
        assert len({p["events_hash"] for p in result["paths"]}) == 1
    assert "event hashes equal across paths: True" in capsys.readouterr().out


@pytest.mark.parametrize("mode", [[], ["--embedded"]], ids=["gateway", "embedded"])
def test_demo_runs_end_to_end_and_audits(tmp_path, capsys, mode) -> None:
    data_dir = tmp_path / "demo"
    code = cli.main(
        ["demo", "--data-dir", str(data_dir), "--orders", "600", "--scale", "0.05",
         "--days", "2", *mode]
    )  # fmt: skip
    output = capsys.readouterr().out
    assert code == 0, output
    assert "every batch matches its recorded digest" in output
    assert "compliance 2024" in output and "CEA-2024" in output
    assert "0 rejected" in output, output  # the simulation only sends orders that can be met
    assert (data_dir / "log").is_dir()


def test_bench_journal_tiny(tmp_path, capsys) -> None:
    out = tmp_path / "journal.json"
    assert cli.main(["bench", "journal", "--messages", "1500", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    policies = {(a["policy"], a["batch_size"]) for a in results["append"]}
    assert policies == {(p, b) for p in ("batch", "interval", "none") for b in (1, 100, 1000)}
    assert all(a["commands"] > 0 and a["commands_per_s"] > 0 for a in results["append"])
    assert results["replay_events_per_s"] > 0 and results["audit_events_per_s"] > 0
    assert "recovery with full audit" in capsys.readouterr().out


def test_bench_carbon_tiny(tmp_path, capsys) -> None:
    out = tmp_path / "carbon.json"
    assert cli.main(["bench", "carbon", "--size", "tiny", "--json", str(out)]) == 0
    year, rush = json.loads(out.read_text())["results"]
    assert year["hashes_equal"] is True and year["days"] == 242
    assert rush["commands"] > 0 and rush["hashes_equal"] is None
    assert year["complied"] + year["short"] == 3_378
    assert "compiled and reference event hashes equal: True" in capsys.readouterr().out
