"""The replication stream and lease bucket: names, message headers, set-up, positions.

One stream per exchange, named ``<NAME>``: subject ``<NAME>.batch`` carries one message per
batch (its log bytes; headers ``Cets-First-Seq`` and ``Cets-Last-Seq``), subject
``<NAME>.term`` a new primary's term message (header ``Cets-Last-Seq``: the last seq it had
applied; the body names the node).  The lease is key ``primary`` of the bucket
``<NAME>_lease``.  The ``Cets-Last-Seq`` headers never decrease along the stream, so the
message holding the batch that ends a log is found by bisection (:func:`find_position`).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js.api import KeyValueConfig, StorageType, StreamConfig

from engine.durable import journal as jr
from engine.durable.sequencer import ReplicaDivergenceError

FIRST_SEQ = "Cets-First-Seq"
LAST_SEQ = "Cets-Last-Seq"
EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"
MSG_ID = "Nats-Msg-Id"
WRONG_LAST_SEQUENCE = 10071
"""JetStream's error code for a publish whose expected last sequence is not the stream's."""
DUPLICATE_IN_PROCESS = 10158
"""JetStream's error code for a retry while the first publish of the message is in flight."""
NO_SUITABLE_PEERS = 10005
"""JetStream's error code for a stream or bucket that cannot be placed yet: fewer peers than
replicas are known to the meta leader (a cluster still forming, or a node restarting)."""
LEASE_KEY = "primary"
SETUP_TIMEOUT_S = 30.0
TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    asyncio.TimeoutError,
)
"""Errors of a cluster without quorum or stream leader (yet): wait and retry."""


@dataclass(frozen=True)
class StreamNames:
    """Where one exchange's replication lives in the NATS cluster."""

    name: str = "CETS"
    replicas: int = 3
    lease_ttl_s: float = 5.0

    @property
    def batch_subject(self) -> str:
        return f"{self.name}.batch"

    @property
    def term_subject(self) -> str:
        return f"{self.name}.term"

    @property
    def bucket(self) -> str:
        return f"{self.name}_lease"


def batch_headers(first_seq: int, last_seq: int, expected_last: int, data: bytes) -> dict:
    """Headers of one batch message: the message id is a digest of the bytes, so a retry is
    recognised as a duplicate and two different batches never share an id."""
    return {
        MSG_ID: hashlib.blake2b(data, digest_size=16).hexdigest(),
        EXPECTED_LAST_SEQUENCE: str(expected_last),
        FIRST_SEQ: str(first_seq),
        LAST_SEQ: str(last_seq),
    }


def is_in_process(exc: BaseException) -> bool:
    """Whether a retried publish found its first attempt still being replicated (no quorum
    yet): the same message is in flight, retry later."""
    return isinstance(exc, nats.js.errors.APIError) and exc.err_code == DUPLICATE_IN_PROCESS


def is_wrong_last_sequence(exc: BaseException) -> bool:
    """Whether a publish failed because the stream has moved on (another writer appended)."""
    return isinstance(exc, nats.js.errors.APIError) and exc.err_code == WRONG_LAST_SEQUENCE


async def ensure(js, names: StreamNames) -> None:
    """Create the stream and the lease bucket if they do not exist (waiting for the cluster
    to elect its JetStream leaders, up to ``SETUP_TIMEOUT_S``)."""
    config = StreamConfig(
        name=names.name,
        subjects=[names.batch_subject, names.term_subject],
        storage=StorageType.FILE,
        num_replicas=names.replicas,
    )
    bucket = KeyValueConfig(
        bucket=names.bucket, ttl=names.lease_ttl_s, replicas=names.replicas, history=1
    )
    await retrying(lambda: js.add_stream(config))
    await retrying(lambda: js.create_key_value(bucket))


def is_placement_pending(exc: BaseException) -> bool:
    """Whether creating a replicated stream or bucket failed only because the cluster does
    not yet know enough peers to place it (transient while set-up waits)."""
    return isinstance(exc, nats.js.errors.APIError) and exc.err_code == NO_SUITABLE_PEERS


async def retrying(make):
    """``await make()`` until it succeeds, retrying the errors of a cluster still forming
    (:data:`TRANSIENT`, and "no suitable peers" while a peer is offline) until
    ``SETUP_TIMEOUT_S`` has passed; any other error, or the last one, is raised."""
    deadline = asyncio.get_running_loop().time() + SETUP_TIMEOUT_S
    while True:
        try:
            return await make()
        except (*TRANSIENT, nats.js.errors.APIError) as exc:
            transient = isinstance(exc, TRANSIENT) or is_placement_pending(exc)
            if not transient or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def last_stream_seq(js, names: StreamNames) -> int:
    """The stream's last sequence (0 when empty)."""
    info = await retrying(lambda: js.stream_info(names.name))
    return info.state.last_seq


async def _key_at(js, names: StreamNames, seq: int) -> int:
    message = await retrying(lambda: js.get_msg(names.name, seq))
    return int(message.headers[LAST_SEQ])


async def find_position(js, names: StreamNames, journal: jr.Journal) -> int:
    """The stream sequence after the message holding ``journal``'s last batch (1 for an empty
    log), after checking that message's bytes end where the log ends (same chain value).

    Raises
    ------
    ReplicaDivergenceError
        The log ends with a batch the stream does not hold (a deposed primary's last batch,
        or a different history).
    """
    last_seq, end = journal.last_seq, await last_stream_seq(js, names)
    if last_seq == 0:
        return 1
    low, high = 1, end + 1  # the first stream seq whose key is >= last_seq, in [low, high]
    while low < high:
        middle = (low + high) // 2
        if await _key_at(js, names, middle) >= last_seq:
            high = middle
        else:
            low = middle + 1
    if low > end:
        raise ReplicaDivergenceError(
            f"the local log ends at seq {last_seq}; the stream {names.name} ends before it "
            f"(at stream seq {end}): this log holds batches that were never replicated"
        )
    message = await retrying(lambda: js.get_msg(names.name, low))
    batch = jr.decode_batch_bytes(message.data) if message.subject == names.batch_subject else None
    if batch is None or batch.last_seq != last_seq or batch.chain_after != journal.chain_hash:
        found = "no batch" if batch is None else f"seqs {batch.first_seq}..{batch.last_seq}"
        raise ReplicaDivergenceError(
            f"the local log ends at seq {last_seq} with chain {journal.chain_hash.hex()[:16]}; "
            f"stream {names.name} message {low} holds {found}"
            + ("" if batch is None else f" ending with chain {batch.chain_after.hex()[:16]}")
        )
    return low + 1
