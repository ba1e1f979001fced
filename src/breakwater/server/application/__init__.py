"""The node's application layer (ARCHITECTURE.md §2): what routes, realtime and replication call.

- :mod:`.writes`: the write path (admit, apply, invalidate the cache, count), one for every caller.
- :mod:`.feed`: the feed follower, the node's one reader of committed changes, and the consumer
  interface its subscribers (read cache, realtime fan-out) implement.

Routes translate HTTP into calls of this layer and its answers back; they do not orchestrate.
"""
