"""The exchange engine: a deterministic state machine, commands in, events out."""
