"""OpenTelemetry tracing of a node: built only when ``[tracing] enabled`` (docs/adr/0028).

Nothing here is imported by a node that does not trace, so tracing off costs no import, no
span object and no context switch: each traced place holds ``tracing: Tracing | None`` and skips
its one ``if`` when it is None. When on, the node has its own ``TracerProvider`` (never the
process-global one, so tests and several nodes in one process stay apart) with a sampler that
decides by trace id alone: a device's trace is kept or dropped alike by every node and region,
and a client cannot force every request to be recorded by setting the ``sampled`` flag.

A write's span context is remembered under its change's ``(origin, seq)`` for a while, so
that the realtime delivery of the change (on the feed follower's side, later, in another task)
links back to the write that made it.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanContext, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import breakwater
from breakwater.obs.tracing_settings import TracingSettings

REMEMBERED_WRITES = 10_000
"""Write span contexts kept for linking deliveries (a few seconds of a busy node's writes)."""
MAX_LINKS = 128
"""Links per delivery span (OpenTelemetry's default span limit)."""

Key = tuple[str, int]
_PROPAGATOR = TraceContextTextMapPropagator()


def sampler_for(ratio: float) -> ParentBased:
    """Keep ``ratio`` of traces by trace id, whatever a remote parent's ``sampled`` flag says;
    a local parent's decision is kept (a trace is never half recorded inside a node)."""
    by_id = TraceIdRatioBased(ratio)
    return ParentBased(root=by_id, remote_parent_sampled=by_id, remote_parent_not_sampled=by_id)


def otlp_exporter(settings: TracingSettings) -> SpanExporter:
    """The OTLP/HTTP exporter of the ``otel`` extra; it honours the ``OTEL_EXPORTER_OTLP_*``
    environment for whatever ``settings`` leave unset."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.endpoint or None)


def build_tracing(
    settings: TracingSettings,
    node: str,
    region: str,
    processor: SpanProcessor | None = None,
) -> Tracing:
    """A node's tracing; spans go to ``processor`` (tests) or, batched, to the OTLP exporter."""
    resource = Resource.create(
        {SERVICE_NAME: settings.service_name, SERVICE_INSTANCE_ID: node, "cloud.region": region}
    )
    provider = TracerProvider(sampler=sampler_for(settings.sampler_ratio), resource=resource)
    provider.add_span_processor(processor or BatchSpanProcessor(otlp_exporter(settings)))
    return Tracing(provider)


class Tracing:
    """A node's tracer and the span contexts of its recent writes."""

    def __init__(self, provider: TracerProvider, remembered: int = REMEMBERED_WRITES) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("breakwater", breakwater.__version__)
        self.remembered = remembered
        self._writes: OrderedDict[Key, SpanContext] = OrderedDict()

    def shutdown(self) -> None:
        """Export what is buffered and stop (the node's shutdown)."""
        self.provider.shutdown()

    # propagation --------------------------------------------------------------------------------

    @staticmethod
    def extract(carrier: Mapping[str, str]) -> Context:
        """The context a caller's ``traceparent``/``tracestate`` name (an empty one when they are
        missing or malformed: W3C says ignore, never refuse)."""
        return _PROPAGATOR.extract(carrier)

    # spans --------------------------------------------------------------------------------------

    def start_server_span(self, name: str, parent: Context, attributes: dict[str, Any]) -> Span:
        """A request's span, child of the caller's context (ended by the caller)."""
        return self.tracer.start_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )

    @staticmethod
    def in_span(span: Span, parent: Context) -> Context:
        """``parent`` with ``span`` as its current span (to :func:`attach`)."""
        return trace.set_span_in_context(span, parent)

    @contextlib.contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[Span]:
        """A child span of the current one, current while the block runs."""
        with self.tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span

    @staticmethod
    def describe(**attributes: Any) -> None:
        """Set attributes on the current span (a request's outcome on its server span)."""
        trace.get_current_span().set_attributes(attributes)

    def child_span(self, name: str, start_ns: int, end_ns: int, **attributes: Any) -> None:
        """A finished child of the current span with given start and end (wall clock, ns)."""
        self.tracer.start_span(name, start_time=start_ns, attributes=attributes).end(end_ns)

    # writes and their deliveries ----------------------------------------------------------------

    def remember(self, keys: Iterable[Key]) -> None:
        """The current span made the changes ``keys``: deliveries of them will link to it."""
        self._remember(trace.get_current_span().get_span_context(), keys)

    def _remember(self, context: SpanContext, keys: Iterable[Key]) -> None:
        if not context.trace_flags.sampled:
            return  # a trace that is not kept: its deliveries are not traced either
        writes = self._writes
        for key in keys:
            writes[key] = context
        while len(writes) > self.remembered:
            writes.popitem(last=False)

    def write_context(self, key: Key) -> SpanContext | None:
        """The span context of the write that made change ``key``, if it was made here lately."""
        return self._writes.get(key)

    def traces_of(self, keys: Iterable[Key]) -> dict[str, list[Key]]:
        """The remembered writes that made some of ``keys``, as ``traceparent`` values with the
        keys each made (what a replication page carries; at most MAX_LINKS writes)."""
        by_write: dict[tuple[int, int], tuple[SpanContext, list[Key]]] = {}
        writes = self._writes
        for key in keys:
            context = writes.get(key)
            if context is None:
                continue
            ids = context.trace_id, context.span_id
            if ids in by_write:
                by_write[ids][1].append(key)
            elif len(by_write) < MAX_LINKS:
                by_write[ids] = context, [key]
        return {_traceparent(context): made for context, made in by_write.values()}

    def links_to(self, keys: Iterable[Key]) -> list[Link]:
        """Links to the writes of ``keys`` (one per distinct write span, at most MAX_LINKS)."""
        seen: dict[tuple[int, int], SpanContext] = {}
        for key in keys:
            context = self._writes.get(key)
            if context is not None:
                seen[context.trace_id, context.span_id] = context
                if len(seen) >= MAX_LINKS:
                    break
        return [Link(context) for context in seen.values()]

    def delivery_span(self, name: str, keys: Iterable[Key], **attributes: Any) -> Span | None:
        """A span for delivering changes ``keys``, or None when none of their writes was kept.

        It is a child of the first kept write (so it is kept, and shows in that write's trace)
        and links to every kept write it delivers (a page can carry many devices' writes).
        """
        links = self.links_to(keys)
        if not links:
            return None
        parent = trace.set_span_in_context(trace.NonRecordingSpan(links[0].context))
        return self.tracer.start_span(name, context=parent, links=links, attributes=attributes)

    def replicated(self, traces: Mapping[str, Iterable[Key]], start_ns: int, end_ns: int) -> None:
        """Record the apply of a replication page (``start_ns`` to ``end_ns``, wall clock) as one
        ``replication.apply`` span per origin write the page names, each a child of that write
        (so it sits in the device's trace); this region's deliveries of the changes then join
        the same trace. Malformed ``traceparent`` values are skipped."""
        for value, keys in list(traces.items())[:MAX_LINKS]:
            parent = self.extract({"traceparent": value})
            if not trace.get_current_span(parent).get_span_context().is_valid:
                continue
            made = list(keys)
            span = self.tracer.start_span(
                "replication.apply",
                context=parent,
                start_time=start_ns,
                attributes={"breakwater.changes": len(made)},
            )
            self._remember(span.get_span_context(), made)
            span.end(end_ns)

    @staticmethod
    def recording() -> bool:
        """Whether the current span is recorded (work under a dropped trace adds no spans)."""
        return trace.get_current_span().is_recording()


def _traceparent(context: SpanContext) -> str:
    """``context`` as a W3C ``traceparent`` value (version 00)."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def current_ids() -> tuple[str, str] | None:
    """The current span's trace and span id in hex, or None outside a recorded span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def attach(context: Context) -> object:
    """Make ``context`` current; hand the token to :func:`detach`."""
    return otel_context.attach(context)


def detach(token: object) -> None:
    """Restore the context before :func:`attach`."""
    otel_context.detach(token)  # type: ignore[arg-type]
