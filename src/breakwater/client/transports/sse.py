"""Realtime over Server-Sent Events (``GET /v1/realtime/sse``), read with httpx streaming.

An SSE stream cannot take a new token while open: with :class:`Credentials`, when the token is
due for refresh (or was refreshed), the stream is closed and reopened with the new one; a stream
refused with 401 (or ended by an ``unauthorized`` error) renews the token and reconnects.
"""

from __future__ import annotations

import asyncio

import httpx

from breakwater.client.errors import EndpointUnavailable, TransportRefused, error_for_problem
from breakwater.client.node_api import Credentials, auth_headers
from breakwater.client.scope import scope_param
from breakwater.client.transports.base import (
    StreamContext,
    TokenRenewed,
    bearer_of,
    brings_changes,
    refused_for_token,
    token_change,
)
from breakwater.core import codec
from breakwater.core.errors import Unauthorized


def _stream_params(context: StreamContext) -> dict[str, str]:
    """The stream's query: the device's cursor, and its collections when scoped."""
    params = {"cursor": context.cursor()}
    collections = scope_param(context.collections)
    if collections is not None:
        params["collections"] = collections
    return params


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
                params=_stream_params(context),
                headers=headers,
                timeout=timeout,
            ) as response:
                if response.status_code != 200:
                    body = await response.aread()
                    try:
                        problem = codec.loads(body)
                    except codec.JSONDecodeError:
                        problem = {}
                    if response.status_code == 401:
                        raise await refused_for_token(context, headers)
                    error = error_for_problem(response.status_code, problem)
                    if isinstance(error, EndpointUnavailable) or response.status_code == 410:
                        raise error
                    raise TransportRefused(f"SSE refused with {response.status_code}")
                if not response.headers.get("content-type", "").startswith("text/event-stream"):
                    raise TransportRefused("SSE answer is not an event stream")
                await self._read_until_renewal(response, context, bearer_of(headers))
        except Unauthorized as exc:  # the token expired on the open stream
            raise await refused_for_token(context, headers) from exc
        except httpx.HTTPError as exc:
            raise EndpointUnavailable(f"SSE: {type(exc).__name__}: {exc}") from exc

    async def _read_until_renewal(
        self, response: httpx.Response, context: StreamContext, token: str | None
    ) -> None:
        """Read events; with credentials, stop for a reconnect when the token changes."""
        if not isinstance(context.headers, Credentials):
            await self._read_events(response, context)
            return
        reading = asyncio.create_task(self._read_events(response, context))
        renewal = asyncio.create_task(token_change(context.headers, token))
        try:
            done, _ = await asyncio.wait({reading, renewal}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reading.cancel()
            renewal.cancel()
            await asyncio.gather(reading, renewal, return_exceptions=True)
        if reading in done:
            reading.result()  # raises the stream's error, if any
            return
        raise TokenRenewed()

    async def _read_events(self, response: httpx.Response, context: StreamContext) -> None:
        event, data = "message", ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "":
                if event == "changes" and data:
                    message = codec.loads(data)
                    if brings_changes(message, context.cursor()):
                        await context.notify(message["cursor"])
                elif event == "error" and data:
                    problem = codec.loads(data).get("error", {})
                    raise error_for_problem(int(problem.get("status", 400)), problem)
                elif event == "reconnect":
                    return
                event, data = "message", ""
