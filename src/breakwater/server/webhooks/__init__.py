"""Webhooks: committed changes delivered to HTTP receivers, signed, at least once.

The outbox is the change feed itself: each subscription keeps a durable cursor into it (in the
webhook store), delivers what lies past it and moves it only when every matching change of the
page was delivered or dead-lettered. See docs/webhooks.md and docs/adr/0025-webhooks.md.
"""
