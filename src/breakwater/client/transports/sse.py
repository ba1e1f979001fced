"""Realtime over Server-Sent Events (``GET /v1/realtime/sse``), read with httpx streaming."""

from __future__ import annotations

import httpx

from breakwater.client.errors import EndpointUnavailable, TransportRefused, error_for_problem
from breakwater.client.node_api import auth_headers
from breakwater.client.transports.base import StreamContext, is_ahead
from breakwater.core import codec


class SseTransport:
    """Read ``changes`` events and wake the sync loop when they move past the device's cursor."""

    name = "sse"

    async def listen(self, context: StreamContext) -> None:
        headers = await auth_headers(context.headers)
        timeout = httpx.Timeout(10.0, read=context.idle_timeout)
        try:
            async with context.http.stream(
                "GET",
                f"{context.base_url}/v1/realtime/sse",
                params={"cursor": context.cursor()},
                headers=headers,
                timeout=timeout,
            ) as response:
                if response.status_code != 200:
                    body = await response.aread()
                    try:
                        problem = codec.loads(body)
                    except codec.JSONDecodeError:
                        problem = {}
                    error = error_for_problem(response.status_code, problem)
                    if isinstance(error, EndpointUnavailable) or response.status_code == 410:
                        raise error
                    raise TransportRefused(f"SSE refused with {response.status_code}")
                if not response.headers.get("content-type", "").startswith("text/event-stream"):
                    raise TransportRefused("SSE answer is not an event stream")
                await self._read_events(response, context)
        except httpx.HTTPError as exc:
            raise EndpointUnavailable(f"SSE: {type(exc).__name__}: {exc}") from exc

    async def _read_events(self, response: httpx.Response, context: StreamContext) -> None:
        event, data = "message", ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "":
                if event == "changes" and data:
                    cursor = codec.loads(data)["cursor"]
                    if is_ahead(cursor, context.cursor()):
                        await context.notify(cursor)
                elif event == "error" and data:
                    problem = codec.loads(data).get("error", {})
                    raise error_for_problem(int(problem.get("status", 400)), problem)
                elif event == "reconnect":
                    return
                event, data = "message", ""
