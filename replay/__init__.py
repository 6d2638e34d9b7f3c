"""Deterministic replay and audit of the exchange's event logs (``cets replay``).

Theory of operation
-------------------
The command log is the source of truth; the engine's state and every event are, by definition,
what replaying it produces.  This package reads a data directory (never writes it, takes no
lock) and answers the questions of auditors, regulators and the exchange's staff:

* :mod:`replay.verify` - is every byte of the log intact (checksums, hash chain, seq
  continuity, checkpoints), and do the snapshots belong to it?
* :mod:`replay.audit` - do the recorded outcomes follow from the rules?  Every batch's events
  are recomputed and compared with the digest its checkpoint recorded.
* :mod:`replay.timeline` and :mod:`replay.state` - what was the state (and the order book) after
  any command or at any time; optionally starting from a snapshot.
* :mod:`replay.reports` - trades of every trading mode (listing, block, auction), daily market
  statistics with the volume of each mode and the composite price, account statements, built
  from the recomputed events through tables that new event kinds extend.
* :mod:`replay.compliance` - one compliance year of the registry: each entity's obligation,
  surrenders by vintage, offsets, shortfall and penalty.
* :mod:`replay.diff` - where two logs, or their outcomes, first diverge.
* :mod:`replay.throughput` - replay and audit speed on a data directory, for ``bench``.

:mod:`replay.cli` is the command line (exit codes documented there).  Replay imports only
``engine``; the hot path hands whole batches of the log's bytes to the compiled engine.
"""
