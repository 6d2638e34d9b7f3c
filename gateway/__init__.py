"""The TCP gateway: sessions, order entry, market data and drop copy over the project's own
binary protocol (``docs/PROTOCOL.md``), in front of one :class:`engine.durable.sequencer.Sequencer`.

Modules: ``protocol`` (framing, messages, codes), ``server`` (the asyncio server and group
commit), ``reports`` (who is told what about each event), ``orders`` (client order ids and
open-order counts, recovered from the log), ``market_data``, ``permissions`` (the role table),
``users`` (the user file and secret hashes), ``service`` (running it), ``client`` (the client
library), ``cli`` (``serve`` and ``users``), ``bench`` (throughput and latency) and
``testing`` (small fixtures).
"""
