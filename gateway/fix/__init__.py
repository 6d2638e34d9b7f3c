"""FIX 4.4 order entry and market data: a second wire format over the gateway's sessions.

``codec`` (tag=value messages, BodyLength, CheckSum, decimal CNY <-> integer fen), ``store``
(a FIX session's sequence numbers and sent messages, per session, in the data directory),
``orders`` (the cumulative quantities and costs FIX execution reports carry), ``session`` (the
sans-I/O FIX session: FIX in, the native protocol's requests to the core; the core's native
messages out, FIX to the peer) and ``acceptor`` (the glue to the asyncio server).
``docs/FIX.md`` is the rules of engagement.
"""
