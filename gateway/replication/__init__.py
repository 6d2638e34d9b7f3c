"""Replication of the exchange on NATS JetStream (optional extra ``replication``)."""
