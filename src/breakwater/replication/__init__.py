"""Region-to-region replication: the pull wire format, the stable vector and the per-peer
replicator (docs/adr/0022-replication.md)."""
