"""The one error tree of Breakwater.

Every error a caller can see derives from :class:`BreakwaterError`. Each type carries the stable
machine-readable ``type`` used on the wire (problem+json), the HTTP status it maps to, and whether
it is transient (retrying the same request later may succeed) or permanent. Retry policies key on
``transient``; nothing ever parses messages.

    BreakwaterError
    ├── InvalidInput                 permanent, 4xx: the request itself is wrong
    │   ├── ValidationError          400 validation_error
    │   ├── PayloadTooLarge          413 payload_too_large
    │   ├── ClockSkew                400 clock_skew (carries the node's HLC)
    │   ├── UnsupportedEncoding      415 unsupported_media_type (a compressed body)
    │   ├── ContentTypeRefused       415 content_type_refused (a file type not allowed)
    │   ├── ChecksumMismatch         460 checksum_mismatch (a tus chunk's Upload-Checksum)
    │   └── RangeNotSatisfiable      416 range_not_satisfiable (a download's Range)
    │   └── SchemaViolation          422 schema_violation
    ├── Unauthorized                 401 unauthorized (no, bad or expired credentials)
    ├── Forbidden                    403 forbidden (authenticated, but a rule or scope refuses)
    ├── RateLimited                  transient, 429 rate_limited (carries ``retry_after``)
    ├── NotFound                     404 not_found
    ├── PreconditionFailed           412 precondition_failed
    ├── Conflict                     409: the resource is in another state than the request says
    │   ├── OffsetMismatch           409 offset_mismatch (a tus PATCH at the wrong Upload-Offset)
    │   └── UploadLocked             transient, 423 upload_locked (another PATCH is running)
    ├── CursorGone                   410: the node cannot honour the cursor; resync from empty
    │   ├── CursorExpired            410 cursor_expired (behind the retention horizon)
    │   └── CursorUnknown            410 cursor_unknown (names positions this store never had)
    ├── Unavailable                  transient, 503 unavailable (store down, draining)
    │   ├── RegionStandby            503 region_standby (a standby region refuses writes)
    │   ├── FileNotReplicated        503 file_not_replicated (no peer region gave the file yet)
    │   └── StoreUnavailable         503 store_unavailable
    │       └── StoreIncompatible    permanent: the schema is newer than this code
    └── ConfigError                  a setting is wrong; the node does not start (also a ValueError)
"""

from __future__ import annotations

from typing import Any, ClassVar


class BreakwaterError(Exception):
    """Root of all errors: ``detail`` is the public message, ``extra`` structured context."""

    type: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    transient: ClassVar[bool] = False

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def to_problem(self) -> dict[str, Any]:
        """The RFC 9457 problem object for this error, public fields only."""
        problem: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        problem.update(self.extra)
        return problem


class InvalidInput(BreakwaterError):
    """The request is wrong; sending it again unchanged fails again."""

    type = "validation_error"
    status = 400
    title = "Invalid input"


class ValidationError(InvalidInput):
    """A value does not have the shape, type or syntax the protocol requires."""


class PayloadTooLarge(InvalidInput):
    """A body, document or batch is over a configured limit."""

    type = "payload_too_large"
    status = 413
    title = "Payload too large"


class ClockSkew(InvalidInput):
    """A mutation's HLC is too far ahead of the node's clock; ``extra['hlc']`` is the node's HLC."""

    type = "clock_skew"
    status = 400
    title = "Clock skew"


class UnsupportedEncoding(InvalidInput):
    """The body has a ``Content-Encoding`` (gzip, br, ...) the node does not decode."""

    type = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"


class SchemaViolation(InvalidInput):
    """The resulting document does not match the collection's JSON Schema."""

    type = "schema_violation"
    status = 422
    title = "Schema violation"


class Unauthorized(BreakwaterError):
    """The request carries no valid credentials (missing, malformed, expired or revoked)."""

    type = "unauthorized"
    status = 401
    title = "Unauthorized"


class Forbidden(BreakwaterError):
    """The caller is known but may not do this: an access rule, a scope or a role refuses."""

    type = "forbidden"
    status = 403
    title = "Forbidden"


class RateLimited(BreakwaterError):
    """Too many requests; ``extra['retry_after']`` is the seconds to wait."""

    type = "rate_limited"
    status = 429
    title = "Too many requests"
    transient = True


class NotFound(BreakwaterError):
    """The addressed resource does not exist."""

    type = "not_found"
    status = 404
    title = "Not found"


class PreconditionFailed(BreakwaterError):
    """``If-Match`` named a version that is not the document's current one."""

    type = "precondition_failed"
    status = 412
    title = "Precondition failed"


class ContentTypeRefused(InvalidInput):
    """A file's declared content type is not on the node's allow-list."""

    type = "content_type_refused"
    status = 415
    title = "Content type refused"


class ChecksumMismatch(InvalidInput):
    """A tus chunk does not match its ``Upload-Checksum``; the chunk was discarded."""

    type = "checksum_mismatch"
    status = 460
    title = "Checksum mismatch"


class RangeNotSatisfiable(InvalidInput):
    """A ``Range`` names no byte of the file; ``extra['size']`` is the file's size."""

    type = "range_not_satisfiable"
    status = 416
    title = "Range not satisfiable"


class Conflict(BreakwaterError):
    """The resource is not in the state the request assumes; re-read it and try again."""

    type = "conflict"
    status = 409
    title = "Conflict"


class OffsetMismatch(Conflict):
    """A tus PATCH's ``Upload-Offset`` is not the upload's; ``extra['offset']`` is the upload's."""

    type = "offset_mismatch"
    title = "Offset mismatch"


class UploadLocked(Conflict):
    """Another request is appending to the same upload; retry after it ends (HEAD first)."""

    type = "upload_locked"
    status = 423
    title = "Upload locked"
    transient = True


class CursorGone(BreakwaterError):
    """The node cannot answer "changes after this cursor"; the reader resyncs from the empty
    cursor. Readers handle the subtypes alike, so a new reason needs no new client code."""

    type = "cursor_gone"
    status = 410
    title = "Cursor gone"


class CursorExpired(CursorGone):
    """The cursor points behind the retention horizon; the reader must resync from scratch."""

    type = "cursor_expired"
    title = "Cursor expired"


class CursorUnknown(CursorGone):
    """The cursor has seen changes this store does not hold (a restore from a backup, another
    deployment's cursor); ``extra['reason']`` says which (docs/protocol.md#cursors)."""

    type = "cursor_unknown"
    title = "Cursor unknown"


class Unavailable(BreakwaterError):
    """A dependency is down or the node is draining; the same request may succeed later."""

    type = "unavailable"
    status = 503
    title = "Service unavailable"
    transient = True


class RegionStandby(Unavailable):
    """This region is a standby: it replicates and serves reads, but takes no write until it
    is promoted; ``extra['active_regions']`` names the regions that do (docs/multi-region.md)."""

    type = "region_standby"
    title = "Region is a standby"


class FileNotReplicated(Unavailable):
    """A document here refers to a file whose bytes this region has not got yet and no peer
    region could give just now; ``extra['retry_after']`` says when to ask again (ADR 0042)."""

    type = "file_not_replicated"
    title = "File not replicated yet"


class StoreUnavailable(Unavailable):
    """The document store cannot be reached or refused the write; nothing was acknowledged."""

    type = "store_unavailable"
    title = "Store unavailable"


class StoreIncompatible(StoreUnavailable):
    """The store's schema was written by a newer Breakwater: waiting will not help (a node
    whose store says so at start does not start), upgrading or restoring will."""

    transient = False


class ConfigError(BreakwaterError, ValueError):
    """A setting is missing, malformed or out of range; the message names key and value."""

    type = "config_error"
    title = "Configuration error"
