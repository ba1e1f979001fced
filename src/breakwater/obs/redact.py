"""Secrets taken out of every log line before it is written.

Libraries log what they see: uvicorn's access and WebSocket lines carry the query string (an
EventSource's ``?access_token=``), websockets' debug lines carry every handshake header
(``Authorization``) and frame (the realtime ``auth`` message). The node cannot change what they
log, so :func:`redact_event` rewrites every rendered line, the node's own and every library's,
on the one path all of them take (``logging.configure``):

- a query string is never written: ``/path?anything`` becomes ``/path?[redacted]``;
- the value of a credential header (``Authorization``, ``Cookie``, ...) and of a credential
  field (``password``, ``refresh_token``, ``secret``, ``otp``, ...) in ``key: value``,
  ``key=value`` and JSON or repr forms, and an event field named like one;
- anything shaped like an access token (a JWT) or an API key, wherever it appears;
- a password in a URL's userinfo.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

REDACTED = "[redacted]"
_CREDENTIAL_FIELDS = (
    "password|current_password|new_password|passwd|refresh_token|access_token|id_token|token"
    "|secret|api_key|apikey|otp|code|recovery_code|recovery_codes|authorization"
    "|proxy-authorization|cookie|set-cookie|x-api-key"
)
_FIELD_NAMES = frozenset(_CREDENTIAL_FIELDS.split("|"))
# Every rule below needs one of these in the (lowercased) text: a line without any, most of
# them, costs a few substring searches instead of the rules' regular expressions.
_SUSPECT_WORDS = (
    "?",
    "@",
    "eyj",
    "bwk_",
    "authoriz",
    "cookie",
    "key",
    "passw",
    "token",
    "secret",
    "otp",
    "code",
)
_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|(?:set-)?cookie|x-api-key)(['\"]?\s*[:=,]\s*b?['\"]?)"
    r"[^\r\n'\"]+",
    re.ASCII,
)
_FIELD = re.compile(
    rf"(?i)(?<![\w-])({_CREDENTIAL_FIELDS})(['\"]?\s*[:=]\s*)"
    r"(\"[^\"]*\"|'[^']*'|[^\s,&;)}\]]+)",
    re.ASCII,
)
_QUERY = re.compile(r"(?<=[\w/.%-])\?[^\s\"'<>]+", re.ASCII)
_JWT = re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]+", re.ASCII)
_API_KEY = re.compile(r"\bbwk_[0-9a-f]+_[\w-]+", re.ASCII)
_USERINFO = re.compile(r"(\b[a-z][\w+.-]*://[^/\s:@]+:)[^@\s/]+@", re.IGNORECASE | re.ASCII)


def redact_text(text: str) -> str:
    """``text`` with every secret it shows replaced by ``[redacted]``."""
    if not _suspect(text):
        return text
    text = _JWT.sub(REDACTED, text)
    text = _API_KEY.sub(REDACTED, text)
    text = _USERINFO.sub(rf"\1{REDACTED}@", text)
    text = _HEADER.sub(rf"\1\2{REDACTED}", text)
    text = _FIELD.sub(_field_value, text)
    return _QUERY.sub(f"?{REDACTED}", text)


def redact_texts(texts: tuple[str, ...]) -> tuple[str, ...]:
    """Each of ``texts`` with its secrets redacted: one check of them all when none has any."""
    if not _suspect("\n".join(texts)):
        return texts
    return tuple(redact_text(text) for text in texts)


def _suspect(text: str) -> bool:
    lowered = text.lower()
    for word in _SUSPECT_WORDS:  # noqa: SIM110  (a plain loop: twice as fast as any() here)
        if word in lowered:
            return True
    return False


def _field_value(match: re.Match[str]) -> str:
    value = match.group(3)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group(1)}{match.group(2)}{quote}{REDACTED}{quote}"


def _redact_value(key: str, value: Any) -> Any:
    if key.lower() in _FIELD_NAMES:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value("", v) for v in value]
    return value


def redact_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: every field of ``event`` with its secrets redacted."""
    texts = []
    for key, value in event.items():
        texts.append(key)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict | list | tuple):
            break
    else:
        if not _suspect("\n".join(texts)):
            return event  # the common case: one pass over the line, nothing to redact
    for key, value in list(event.items()):
        if not key.startswith("_"):
            event[key] = _redact_value(key, value)
    return event
