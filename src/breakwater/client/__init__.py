"""The Breakwater client SDK: an offline-first local store that syncs in the background.

See docs/sdk.md. The public API is :class:`Client`, :class:`Collection`, :class:`Document`, the
status and events, sign-in (``client.auth``), and the errors.
"""

from breakwater.client.client import Client
from breakwater.client.collection import Collection
from breakwater.client.errors import (
    ClientClosed,
    EndpointUnavailable,
    MfaRequired,
    NotSignedIn,
    TransportRefused,
)
from breakwater.client.events import (
    AuthChanged,
    AuthState,
    Event,
    MutationQueued,
    MutationRejected,
    MutationsAcknowledged,
    PageApplied,
    ResyncStarted,
    Status,
    StatusChanged,
    SyncProgress,
)
from breakwater.client.external_token import ExternalToken
from breakwater.client.local_store import Document, ServerDocument
from breakwater.client.outbox import OutboxEntry, Rejection
from breakwater.client.session import Auth, OidcStart

__all__ = [
    "Auth",
    "AuthChanged",
    "AuthState",
    "Client",
    "ClientClosed",
    "Collection",
    "Document",
    "EndpointUnavailable",
    "Event",
    "ExternalToken",
    "MfaRequired",
    "MutationQueued",
    "MutationRejected",
    "MutationsAcknowledged",
    "NotSignedIn",
    "OidcStart",
    "OutboxEntry",
    "PageApplied",
    "Rejection",
    "ResyncStarted",
    "ServerDocument",
    "Status",
    "StatusChanged",
    "SyncProgress",
    "TransportRefused",
]
