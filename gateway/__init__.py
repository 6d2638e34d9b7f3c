"""The TCP gateway: sessions, order entry, market data and drop copy over the project's own
binary protocol (``docs/PROTOCOL.md``), in front of one :class:`engine.durable.sequencer.Sequencer`.

Modules: ``protocol`` (the wire protocol: framing, messages, codes), ``session`` (one client
session as a sans-I/O state machine), ``core`` (the session logic: sessions, requests to engine
records, report routing; no I/O), ``server`` (the asyncio adapter around the core and the group
commit), ``reports`` (who is told what about each event), ``orders`` (client order ids and
open-order counts, recovered from the log), ``market_data``, ``permissions`` (the role table),
``users`` (the user file and secret hashes), ``service`` (running it), ``client`` (the client
library), ``cli`` (``serve`` and ``users``), ``bench`` (throughput and latency) and
``testing`` (small fixtures).
"""
