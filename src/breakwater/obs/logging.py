"""Structured JSON logs: one object per line, on stdout, through structlog.

``configure`` is called by the CLI when a node starts, never at import. Uvicorn's own loggers are
routed through the same renderer so that every line a node prints is JSON, and every line, the
node's and every library's, passes :func:`~breakwater.obs.redact.redact_event` on its way out.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

import orjson
import structlog

from breakwater.obs import access_log
from breakwater.obs.redact import redact_event

_SHARED: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class StepBufferedLogger:
    """Writes rendered lines to a binary stream, one write per event-loop step.

    A busy node logs a line per request; a write system call per line cost about a twentieth of
    its event loop. Lines logged on the loop are written together at the end of the step (before
    the loop waits for anything); lines logged elsewhere (threads, no loop) are written at once.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        atexit.register(self.flush)

    def msg(self, message: bytes) -> None:
        """Queue one line (structlog calls this for every level)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._pending.append(message)
            first = len(self._pending) == 1
        if loop is None:
            self.flush()
        elif first:
            loop.call_soon(self.flush)

    debug = info = warning = warn = error = critical = exception = fatal = msg

    def flush(self) -> None:
        """Write every queued line now."""
        with self._lock:
            if not self._pending:
                return
            data = b"\n".join(self._pending) + b"\n"
            self._pending.clear()
        self._stream.write(data)
        self._stream.flush()


class LibraryWarningsOnOneLine(logging.Filter):
    """A library's warning keeps its line but not its traceback; errors keep theirs.

    During a PostgreSQL outage asyncpg's pool logs "Failed to restore the pool connection
    floor" with a full traceback every second; the node reports the outage itself (its own
    events, ``/readyz``, metrics), so the library's line needs the error, not the stack.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.levelno < logging.ERROR and not _ours(record.name):
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _ours(name: str) -> bool:
    return name == "breakwater" or name.startswith("breakwater.")


def _dumps_text(value: Any, **_: Any) -> str:
    return orjson.dumps(value).decode()


def add_trace_ids(
    _logger: Any, _method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Add ``trace_id`` and ``span_id`` of the active span (a node that traces, ADR 0028)."""
    from breakwater.obs.tracing import current_ids

    ids = current_ids()
    if ids is not None:
        event["trace_id"], event["span_id"] = ids
    return event


def configure(level: str = "info", *, trace_ids: bool = False) -> None:
    """Send structlog and stdlib logging to stdout as JSON lines at ``level``; with
    ``trace_ids``, every line logged inside a span names it."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"log level {level!r} is not one of debug, info, warning, error")
    shared = [*_SHARED, add_trace_ids] if trace_ids else list(_SHARED)
    sink = StepBufferedLogger(sys.stdout.buffer)
    access_log.install(
        access_log.AccessLog(sink.msg, enabled=numeric <= logging.INFO, trace_ids=trace_ids)
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            redact_event,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_shared_factory(sink),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_event,
                structlog.processors.JSONRenderer(serializer=_dumps_text),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    handler.addFilter(LibraryWarningsOnOneLine())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def _shared_factory(logger: StepBufferedLogger) -> Callable[..., StepBufferedLogger]:
    def factory(*_: Any) -> StepBufferedLogger:
        return logger

    return factory


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger that renders as configured (structlog's defaults when not configured)."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
