"""The last resort: long-poll pulls (``GET /v1/sync/pull?wait=``), which any HTTP path passes."""

from __future__ import annotations

from breakwater.client.node_api import NodeApi
from breakwater.client.scope import scope_param
from breakwater.client.transports.base import StreamContext

WAIT_SECONDS = 25.0


class LongPollTransport:
    """Hold a one-change pull open until something commits past the device's cursor."""

    name = "long_poll"

    def __init__(self, wait: float = WAIT_SECONDS) -> None:
        self.wait = wait

    async def listen(self, context: StreamContext) -> None:
        api = NodeApi(context.http, context.base_url, context.headers)
        while True:
            page = await api.pull(
                context.cursor(),
                limit=1,
                wait=self.wait,
                include_state=False,
                collections=scope_param(context.collections),
            )
            if page["changes"]:
                await context.notify(page["cursor"])
