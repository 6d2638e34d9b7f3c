"""Replay is bit-for-bit deterministic: separate processes with different ``PYTHONHASHSEED``
values, and repeated runs in one process, produce the same state hash, the same event digests
and the same reports."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import msgspec

from replay.audit import audit
from replay.datadir import open_data_dir
from replay.timeline import rebuild
from tests.test_replay_support import random_log

ROOT = Path(__file__).absolute().parent.parent

# Runs in a fresh interpreter: every replay command's JSON output, one document per line.
PROBE = """
import io, sys
from replay.cli import main
for argv in (["run"], ["audit"], ["trades", "--format", "json"], ["market"],
             ["statement", "--account", "3"], ["run", "--until-seq", sys.argv[2]]):
    sys.stdout = io.TextIOWrapper(io.BytesIO())
    code = main([argv[0], sys.argv[1], *argv[1:], "--json", "--quiet"])
    out = sys.stdout.buffer.getvalue()
    sys.stdout = sys.__stdout__
    assert code == 0, argv
    sys.stdout.buffer.write(out)
"""


def probe(data_dir: Path, seq: int, hash_seed: str) -> list[bytes]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(data_dir), str(seq)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.splitlines()


def test_processes_with_other_hash_seeds_agree_byte_for_byte(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    _, hashes = random_log(tmp_path, seed, registry=True)
    seq = random.Random(seed).randrange(1, max(hashes))
    outputs = [probe(tmp_path, seq, hash_seed) for hash_seed in ("0", "1", "random")]
    assert len(outputs[0]) == 6
    assert outputs[0] == outputs[1] == outputs[2], f"seed {seed}"
    final = msgspec.json.decode(outputs[0][0])
    assert final["state_hash"] == hashes[max(hashes)], f"seed {seed}"
    assert msgspec.json.decode(outputs[0][1])["ok"] is True


def test_repeated_replays_in_one_process_agree(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    random_log(tmp_path, seed, days=2, per_day=100)
    data = open_data_dir(tmp_path)
    first, second = audit(data), audit(data)
    assert first == second and first.ok, f"seed {seed}"
    assert rebuild(data).engine.state_hash() == first.state_hash
