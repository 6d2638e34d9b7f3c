"""Leadership as a lease: one key in a JetStream key-value bucket whose entries expire.

The bucket's TTL is the lease's: an entry not rewritten for that long disappears.  The
holder rewrites it every quarter TTL with compare-and-set on the revision it last wrote
(:meth:`Lease.renew`); a candidate takes it only when it is absent (:meth:`Lease.acquire`).
The lease says who should write; the stream's expected-last-sequence check is what makes a
second writer's publish fail (see the package docstring).
"""

from __future__ import annotations

import nats.js.errors

from gateway.replication.stream import LEASE_KEY, TRANSIENT, StreamNames

CREATE_ATTEMPTS = 3
"""Writes of one :meth:`Lease.acquire` when the holder's entry keeps expiring mid-create."""


class LeaseLostError(RuntimeError):
    """Another node holds the lease this node held."""


class Lease:
    """This node's view of the lease.  Its coroutines run on the link's loop.

    Parameters
    ----------
    js : JetStreamContext
    names : StreamNames
    holder : str
        This node's name (the value written).
    """

    def __init__(self, js, names: StreamNames, holder: str) -> None:
        self.js, self.names, self.holder = js, names, holder
        self.revision: int | None = None
        self._kv = None

    async def _bucket(self):
        if self._kv is None:
            self._kv = await self.js.key_value(self.names.bucket)
        return self._kv

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it; whether this node now holds it.

        ``kv.create`` is two requests: a write that fails while the key exists, then a read
        that tells a deleted key (write again) from a held one.  When the holder's entry
        expires between the two, the read finds no key at all (``KeyNotFoundError``): the
        lease is free now, so the write is tried again (a few times, then False: a later
        look tries again).
        """
        kv = await self._bucket()
        for _ in range(CREATE_ATTEMPTS):
            try:
                self.revision = await kv.create(LEASE_KEY, self.holder.encode())
            except nats.js.errors.KeyWrongLastSequenceError:
                return False
            except nats.js.errors.KeyNotFoundError:
                continue  # the entry expired between create's write and its read
            return True
        return False

    async def current(self) -> tuple[str, int] | None:
        """(holder, revision) of the lease, or None when nobody holds it."""
        kv = await self._bucket()
        try:
            entry = await kv.get(LEASE_KEY)
        except nats.js.errors.KeyNotFoundError:
            return None
        return entry.value.decode(), entry.revision

    async def renew(self) -> None:
        """Rewrite the lease (compare-and-set on our revision).  If it expired meanwhile and
        nobody took it, take it again.

        Raises
        ------
        LeaseLostError
            Another node holds it.
        """
        kv = await self._bucket()
        try:
            self.revision = await kv.update(LEASE_KEY, self.holder.encode(), last=self.revision)
            return
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        if await self.acquire():
            return
        current = await self.current()
        holder = "nobody" if current is None else f"{current[0]} (revision {current[1]})"
        raise LeaseLostError(f"the primary lease is held by {holder}, not by {self.holder}")

    async def release(self) -> None:
        """Give the lease up (a clean shutdown: a follower need not wait for the TTL)."""
        if self.revision is None:
            return
        kv = await self._bucket()
        try:
            await kv.delete(LEASE_KEY, last=self.revision)
        except (nats.js.errors.KeyWrongLastSequenceError, *TRANSIENT):
            pass
        self.revision = None
