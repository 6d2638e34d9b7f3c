"""A full disk, for real: the log on a 1 MiB tmpfs that fills up.

The storage-fault simulator (tests/storage_faults.py) covers ENOSPC at every write and sync;
this test checks the same promise on a real file system: when a new segment cannot be made,
the batch is refused (``LogFullError``), nothing of it is acknowledged or left behind, the
sequencer stays usable, and once space returns the next batch is accepted; recovery then finds
exactly the acknowledged batches.  The tmpfs is mounted in a private mount namespace
(``unshare -rm``: root, or an unprivileged user namespace), so nothing outside the test sees it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=64k none $d && umount $d && rmdir $d"
    result = subprocess.run(["unshare", "-rm", "sh", "-c", probe], capture_output=True)
    return result.returncode == 0


SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from tests.conftest import small_market
    from engine.core import schema as s
    from engine.core.reference.engine import ReferenceEngine
    from engine.durable import journal as jr
    from engine.durable.sequencer import Sequencer

    fs = Path(sys.argv[1])
    data = fs / "data"
    options = dict(engine_factory=ReferenceEngine, segment_bytes=16 << 10,
                   snapshot_every_events=None)
    out = {"acknowledged": 0, "refused": 0}
    filler = fs / "filler"
    with Sequencer.open(data, small_market(), **options) as sequencer:
        # leave room for a few segments only
        free = os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize
        filler.write_bytes(b"x" * (free - (40 << 10)))
        key = 0
        while out["refused"] < 3:
            key += 1
            batch = [s.OpenAccount(key=key, account=key, kind=s.AccountKind.INVESTOR)]
            try:
                sequencer.submit(batch)
                out["acknowledged"] += 1
            except jr.LogFullError as exc:
                out["refused"] += 1
                out["message"] = str(exc)
                key -= 1  # the same command is tried again later
            if key > 10_000:
                break
        out["last_seq_when_full"] = sequencer.last_seq
        filler.unlink()  # space returns
        key += 1
        sequencer.submit([s.OpenAccount(key=key, account=key, kind=s.AccountKind.INVESTOR)])
        out["acknowledged"] += 1
        out["last_seq"] = sequencer.last_seq
        out["state_hash"] = sequencer.state_hash()
    with Sequencer.open(data, **options) as recovered:
        out["recovered_seq"] = recovered.last_seq
        out["recovered_hash"] = recovered.state_hash()
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="cannot mount a tmpfs (no unshare -rm here)")
def test_a_full_file_system_refuses_batches_and_resumes(tmp_path: Path) -> None:
    script = tmp_path / "fill.py"
    script.write_text(SCRIPT)
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    shell = (
        f"mount -t tmpfs -o size=1m none {mount_point} && "
        f"exec {sys.executable} {script} {mount_point} {ROOT}"
    )
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", shell], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["refused"] == 3, out
    assert "full" in out["message"], out
    assert out["acknowledged"] >= 1
    # every acknowledged batch (one command each) and nothing else
    assert out["last_seq"] == out["acknowledged"] == out["last_seq_when_full"] + 1
    assert (out["recovered_seq"], out["recovered_hash"]) == (out["last_seq"], out["state_hash"])
