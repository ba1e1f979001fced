"""Node configuration: one frozen object built once, from defaults < TOML < environment < flags.

Every top-level setting ``key`` is also read from ``BREAKWATER_KEY`` and every limit from
``BREAKWATER_LIMITS_KEY``, every ``[auth]`` setting from ``BREAKWATER_AUTH_KEY``. Collections
(schema, conflict policy, indexes, access rules, owner field) come from the TOML file only.
A bad value fails at startup with a :class:`ConfigError` that names the key and the value.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from breakwater.auth.external_settings import parse_external, parse_oidc
from breakwater.auth.mail import SmtpSettings
from breakwater.auth.rules import CollectionRules, compile_rules
from breakwater.auth.settings import AuthSettings, proxy_networks
from breakwater.core.collections import CollectionConfig, Validator
from breakwater.core.errors import ConfigError, SchemaViolation
from breakwater.core.hlc import NODE_PATTERN
from breakwater.core.incarnation import REGION_PATTERN
from breakwater.core.limits import Limits
from breakwater.core.mutation import COLLECTION_PATTERN
from breakwater.core.topology import Topology, parse_topology
from breakwater.obs.tracing_settings import TracingSettings
from breakwater.storage import redact_url

ENV_PREFIX = "BREAKWATER_"
REALTIME_TRANSPORTS = ("websocket", "sse")
MAX_DEPTH_CEILING = 200
MAX_WORKERS = 64
MAX_WORKER_NODE_ID = 60

__all__ = ["Config", "ConfigError", "load_config", "redact_url"]


@dataclass(frozen=True)
class Config:
    """Everything a node needs to start."""

    host: str = "127.0.0.1"
    port: int = 8080
    data: Path = Path("data")
    store: str = ""
    region: str = "local"
    node: str = ""
    workers: int = 1
    """Processes serving this node (``serve --workers``); see server/workers.py."""
    log_level: str = "info"
    # Durations are in seconds unless the name says otherwise.
    max_clock_skew: float = 60.0
    # Test-only: shifts the HLC physical time (chaos clock-skew faults). Never in production.
    clock_offset_ms: int = 0
    retention_days: float = 30.0
    compaction_interval: float = 3600.0
    drain_grace: float = 1.0
    drain_timeout: float = 10.0
    # Slow and greedy clients: see server/slow_clients.py and docs/security.md.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections_per_address: int = 256
    bus: str = "memory://"
    cache: str = "memory://"
    cache_ttl: float = 60.0
    # Realtime (WebSocket and SSE): see docs/protocol.md#realtime.
    max_realtime_connections: int = 10_000
    realtime_heartbeat: float = 15.0
    realtime_timeout: float = 45.0
    realtime_queue: int = 1000
    # Largest share of the event loop the live fan-out may take; 1 (the default) never pauses
    # between send passes, a lower share trades delivery latency for fewer, bigger messages.
    realtime_fanout_share: float = 1.0
    realtime_admission_rate: float = 200.0
    realtime_admission_burst: int = 100
    realtime_admission_wait: float = 5.0
    # Comma-separated realtime transports this node serves (long-poll pulls always work).
    realtime_transports: str = "websocket,sse"
    # Web pages that may call the node (CORS and the WebSocket Origin check): see
    # server/cors.py and docs/security.md#browsers. Empty: pages on loopback when the node
    # listens on loopback, none otherwise. "*" allows every origin.
    cors_origins: tuple[str, ...] = ()
    cors_max_age: int = 7200
    # Webhooks: see docs/webhooks.md. Receivers on loopback and private networks are refused
    # unless allowed (SSRF, docs/security.md#webhooks).
    webhook_allow_private: bool = False
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 8
    webhook_backoff_base: float = 1.0
    webhook_backoff_cap: float = 300.0
    webhook_concurrency: int = 4
    webhook_log_retention_days: float = 7.0
    webhook_takeover_after: float = 60.0
    """Seconds without a page from a peer region after which that region counts as lost and
    one live region delivers its changes (ADR 0042)."""
    # Files: see docs/files.md. Empty files_store: on disk under <data>/files/blobs.
    files_store: str = ""
    files_max_size: int = 1 << 30
    files_content_types: tuple[str, ...] = (
        "image/*",
        "video/*",
        "audio/*",
        "application/pdf",
        "text/plain",
        "application/octet-stream",
    )
    files_url_ttl: float = 3600.0
    files_upload_lifetime: float = 86400.0
    files_gc_grace: float = 86400.0
    files_gc_interval: float = 3600.0
    limits: Limits = field(default_factory=Limits)
    collections: Mapping[str, CollectionConfig] = field(default_factory=dict)
    auth: AuthSettings = field(default_factory=AuthSettings)
    rules: Mapping[str, CollectionRules] = field(default_factory=dict)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    topology: Topology = field(default_factory=Topology)
    """Peer regions and this region's initial state (core/topology.py, docs/multi-region.md)."""

    @property
    def store_url(self) -> str:
        """The store URL, defaulting to a SQLite file in the data directory."""
        return self.store or f"sqlite:///{self.data / 'breakwater.db'}"

    @property
    def store_url_redacted(self) -> str:
        """The store URL with any password replaced, for logs."""
        return redact_url(self.store_url)

    @property
    def node_id(self) -> str:
        """The node id used in HLC stamps."""
        return self.node or f"{self.region}-{secrets.token_hex(3)}"

    @property
    def enabled_realtime_transports(self) -> frozenset[str]:
        """The realtime transports this node serves (``realtime_transports``, parsed)."""
        return frozenset(t.strip() for t in self.realtime_transports.split(",") if t.strip())


_TABLES = ("limits", "collections", "auth", "rules", "smtp", "tracing", "topology")
_TOP_KEYS = [f.name for f in dataclasses.fields(Config) if f.name not in _TABLES]
_LIMIT_KEYS = [f.name for f in dataclasses.fields(Limits)]
_AUTH_TABLES = ("oidc", "external")
_AUTH_KEYS = [f.name for f in dataclasses.fields(AuthSettings) if f.name not in _AUTH_TABLES]
_SMTP_KEYS = [f.name for f in dataclasses.fields(SmtpSettings)]
_SMTP_SECURITY = ("starttls", "ssl", "none")
_TRACING_KEYS = [f.name for f in dataclasses.fields(TracingSettings)]


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _coerce(key: str, value: Any, kind: type | str) -> Any:
    kind_name = kind if isinstance(kind, str) else kind.__name__
    try:
        if kind_name in ("int", "float") and isinstance(value, str) and not value.isascii():
            raise ValueError  # int() and float() read Arabic-Indic and fullwidth digits too
        if kind_name == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind_name == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind_name == "bool":
            if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
                return _BOOLEANS[value.strip().lower()]
            if not isinstance(value, bool):
                raise ValueError
            return value
        if kind_name == "Path":
            return Path(str(value))
        if kind_name in ("str", "ModeSetting"):
            if not isinstance(value, str):
                raise ValueError
            return value
        if kind_name == "tuple[str, ...]":
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",")] if value.strip() else []
            if "" in value:
                raise ValueError  # "a,,b": a name left out by mistake, never skipped silently
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError
            return tuple(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} = {value!r} is not a valid {kind_name}") from None
    raise ConfigError(f"{key}: unsupported setting type {kind_name}")


def _field_types(cls: type) -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(cls)}


def _load_schema_file(name: str, file: str, base: Path) -> Any:
    path = Path(file) if Path(file).is_absolute() else base / file
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"collections.{name}.schema_file = {str(path)!r}: {exc}") from exc


def _schema_validator(name: str, schema: Any) -> Validator:
    if not isinstance(schema, dict):
        raise ConfigError(f"collections.{name}.schema must be a table (a JSON Schema)")
    try:
        validator_cls = jsonschema.validators.validator_for(schema)
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(
            f"collections.{name}.schema is not a valid JSON Schema: {exc.message}"
        ) from exc
    validator = validator_cls(schema)

    def validate(document: dict[str, Any]) -> None:
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        if errors:
            raise SchemaViolation(
                f"document does not match the {name!r} schema: {errors[0].message}",
                errors=[
                    {"path": "/" + "/".join(str(p) for p in e.path), "message": e.message}
                    for e in errors[:20]
                ],
            )

    return validate


def _rules(raw: Any) -> dict[str, CollectionRules]:
    """The compiled access rules and owner fields of the collections that declare them."""
    result = {}
    for name, settings in raw.items():
        if isinstance(settings, dict) and ("rules" in settings or "owner" in settings):
            result[name] = compile_rules(name, settings.get("rules", {}), settings.get("owner"))
    return result


def _auth(raw: Any, env: Mapping[str, str]) -> AuthSettings:
    if not isinstance(raw, dict) or set(raw) - {*_AUTH_KEYS, *_AUTH_TABLES}:
        raise ConfigError(f"auth must be a table with keys from {[*_AUTH_KEYS, *_AUTH_TABLES]}")
    types = _field_types(AuthSettings)
    values: dict[str, Any] = {
        "oidc": parse_oidc(raw.get("oidc", {}), env),
        "external": parse_external(raw.get("external", {})),
    }
    for key in _AUTH_KEYS:
        if key in raw:
            values[key] = _coerce(f"auth.{key}", raw[key], types[key])
        env_key = f"{ENV_PREFIX}AUTH_{key.upper()}"
        if env.get(env_key):
            values[key] = _coerce(env_key, env[env_key], types[key])
    settings = AuthSettings(**values)
    if settings.mode not in ("auto", "open", "enforce"):
        raise ConfigError(f"auth.mode = {settings.mode!r} is not auto, open or enforce")
    for key in (
        "access_ttl",
        "refresh_ttl",
        "max_realtime_per_user",
        "password_time_cost",
        "signin_known_address_days",
    ):
        if getattr(settings, key) <= 0:
            raise ConfigError(f"auth.{key} = {getattr(settings, key)!r} must be positive")
    if settings.password_memory_kib < 8 * settings.password_time_cost:
        raise ConfigError(f"auth.password_memory_kib = {settings.password_memory_kib} is too small")
    for key in (name for name in _AUTH_KEYS if name.startswith("rate_")):
        if getattr(settings, key) < 0:
            raise ConfigError(f"auth.{key} = {getattr(settings, key)!r} must not be negative")
    for key in (name for name in _AUTH_KEYS if name.startswith("burst_")):
        if getattr(settings, key) < 1:
            raise ConfigError(f"auth.{key} = {getattr(settings, key)!r} must be at least 1")
    if not settings.audience:
        raise ConfigError("auth.audience must not be empty")
    try:
        proxy_networks(settings.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return settings


def _smtp(raw: Any, env: Mapping[str, str]) -> SmtpSettings:
    """The ``[smtp]`` table; every key also reads from ``BREAKWATER_SMTP_<KEY>`` (so the
    password can stay out of the file)."""
    if not isinstance(raw, dict) or set(raw) - set(_SMTP_KEYS):
        raise ConfigError(f"smtp must be a table with keys from {_SMTP_KEYS}")
    types = _field_types(SmtpSettings)
    values: dict[str, Any] = {}
    for key in _SMTP_KEYS:
        if key in raw:
            values[key] = _coerce(f"smtp.{key}", raw[key], types[key])
        env_key = f"{ENV_PREFIX}SMTP_{key.upper()}"
        if env.get(env_key):
            values[key] = _coerce(env_key, env[env_key], types[key])
    settings = SmtpSettings(**values)
    if settings.security not in _SMTP_SECURITY:
        raise ConfigError(f"smtp.security = {settings.security!r} is not one of {_SMTP_SECURITY}")
    if not 0 < settings.port <= 65535:
        raise ConfigError(f"smtp.port = {settings.port} is not a TCP port")
    if settings.timeout <= 0:
        raise ConfigError(f"smtp.timeout = {settings.timeout} must be positive")
    if settings.host and "@" not in settings.from_address:
        raise ConfigError("smtp.from_address must be an email address when smtp.host is set")
    if settings.base_url and not settings.base_url.startswith(("https://", "http://")):
        raise ConfigError(f"smtp.base_url = {settings.base_url!r} must be an http(s) URL")
    return settings


def _tracing(raw: Any, env: Mapping[str, str]) -> TracingSettings:
    """``[tracing]``, then ``BREAKWATER_TRACING_*``; OpenTelemetry's own ``OTEL_SERVICE_NAME``
    and ``OTEL_TRACES_SAMPLER_ARG`` fill in what neither sets, ``OTEL_SDK_DISABLED`` turns
    tracing off."""
    if not isinstance(raw, dict) or set(raw) - set(_TRACING_KEYS):
        raise ConfigError(f"tracing must be a table with keys from {_TRACING_KEYS}")
    types = _field_types(TracingSettings)
    values: dict[str, Any] = {}
    otel_defaults = {
        "service_name": "OTEL_SERVICE_NAME",
        "sampler_ratio": "OTEL_TRACES_SAMPLER_ARG",
    }
    for key in _TRACING_KEYS:
        otel_key = otel_defaults.get(key)
        if otel_key is not None and env.get(otel_key):
            values[key] = _coerce(otel_key, env[otel_key], types[key])
        if key in raw:
            values[key] = _coerce(f"tracing.{key}", raw[key], types[key])
        env_key = f"{ENV_PREFIX}TRACING_{key.upper()}"
        if env.get(env_key):
            values[key] = _coerce(env_key, env[env_key], types[key])
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        values["enabled"] = False
    settings = TracingSettings(**values)
    if not 0.0 <= settings.sampler_ratio <= 1.0:
        raise ConfigError(
            f"tracing.sampler_ratio = {settings.sampler_ratio!r} must be between 0 and 1"
        )
    if not settings.service_name:
        raise ConfigError("tracing.service_name must not be empty")
    if settings.endpoint and urlsplit(settings.endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"tracing.endpoint = {settings.endpoint!r} must be an http(s) URL")
    return settings


def _collections(raw: Any, base: Path) -> dict[str, CollectionConfig]:
    if not isinstance(raw, dict):
        raise ConfigError("collections must be a table of tables")
    result = {}
    for name, settings in raw.items():
        if not COLLECTION_PATTERN.fullmatch(name):
            raise ConfigError(f"collections.{name}: not a valid collection name")
        if not isinstance(settings, dict):
            raise ConfigError(f"collections.{name} must be a table")
        unknown = set(settings) - {"conflict", "indexes", "schema", "schema_file", "rules", "owner"}
        if unknown:
            raise ConfigError(f"collections.{name}: unknown settings {sorted(unknown)}")
        schema = settings.get("schema")
        if "schema_file" in settings:
            schema = _load_schema_file(name, str(settings["schema_file"]), base)
        indexes = settings.get("indexes", [])
        if not isinstance(indexes, list) or not all(isinstance(i, str) for i in indexes):
            raise ConfigError(f"collections.{name}.indexes must be a list of field names")
        try:
            result[name] = CollectionConfig(
                name=name,
                conflict=settings.get("conflict", "field"),
                indexes=tuple(indexes),
                validator=None if schema is None else _schema_validator(name, schema),
            )
        except ValueError as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(str(exc)) from exc
    return result


def load_config(
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the :class:`Config`: defaults, then ``file``, then ``env``, then ``overrides``."""
    env = os.environ if env is None else env
    if file is None and env.get(f"{ENV_PREFIX}CONFIG"):
        file = Path(env[f"{ENV_PREFIX}CONFIG"])
    raw: dict[str, Any] = {}
    if file is not None:
        try:
            raw = tomllib.loads(file.read_text())
        except OSError as exc:
            raise ConfigError(f"config file {str(file)!r} cannot be read: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(file)!r} is not valid TOML: {exc}") from exc
    known = set(_TOP_KEYS) | {"limits", "collections", "auth", "smtp", "tracing", "topology"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown settings in {file}: {sorted(unknown)}")
    top_types = _field_types(Config)
    values: dict[str, Any] = {}
    for key in _TOP_KEYS:
        if key in raw:
            values[key] = _coerce(key, raw[key], top_types[key])
        env_key = f"{ENV_PREFIX}{key.upper()}"
        if env.get(env_key):
            values[key] = _coerce(env_key, env[env_key], top_types[key])
        if overrides and overrides.get(key) is not None:
            values[key] = _coerce(f"--{key.replace('_', '-')}", overrides[key], top_types[key])
    limit_types = _field_types(Limits)
    raw_limits = raw.get("limits", {})
    if not isinstance(raw_limits, dict) or set(raw_limits) - set(_LIMIT_KEYS):
        raise ConfigError(f"limits must be a table with keys from {_LIMIT_KEYS}")
    limit_values: dict[str, Any] = {}
    for key in _LIMIT_KEYS:
        if key in raw_limits:
            limit_values[key] = _coerce(f"limits.{key}", raw_limits[key], limit_types[key])
        env_key = f"{ENV_PREFIX}LIMITS_{key.upper()}"
        if env.get(env_key):
            limit_values[key] = _coerce(env_key, env[env_key], limit_types[key])
        if key in limit_values and limit_values[key] <= 0:
            raise ConfigError(f"limits.{key} = {limit_values[key]!r} must be positive")
    if limit_values.get("max_depth", 0) > MAX_DEPTH_CEILING:
        # The JSON codec cannot encode deeper values; a larger limit would turn a 400 into a 500.
        raise ConfigError(
            f"limits.max_depth = {limit_values['max_depth']} must be at most {MAX_DEPTH_CEILING}"
        )
    base = file.parent if file is not None else Path.cwd()
    collections = _collections(raw.get("collections", {}), base)
    config = Config(
        **values,
        limits=Limits(**limit_values),
        collections=collections,
        auth=_auth(raw.get("auth", {}), env),
        rules=_rules(raw.get("collections", {})),
        smtp=_smtp(raw.get("smtp", {}), env),
        tracing=_tracing(raw.get("tracing", {}), env),
        topology=Topology(),
    )
    # After the top-level keys: the own-address check needs the final region, host and port.
    config = dataclasses.replace(
        config,
        topology=parse_topology(
            raw.get("topology", {}), env, config.region, config.host, config.port
        ),
    )
    _check(config)
    return config


def _check(config: Config) -> None:
    if not 0 <= config.port <= 65535:
        raise ConfigError(f"port = {config.port} is not a TCP port")
    if not REGION_PATTERN.fullmatch(config.region):
        raise ConfigError(f"region = {config.region!r} must match {REGION_PATTERN.pattern}")
    if config.node and not NODE_PATTERN.fullmatch(config.node):
        raise ConfigError(f"node = {config.node!r} must match {NODE_PATTERN.pattern}")
    if not 1 <= config.workers <= MAX_WORKERS:
        raise ConfigError(f"workers = {config.workers} must be between 1 and {MAX_WORKERS}")
    if config.workers > 1 and config.node and len(config.node) > MAX_WORKER_NODE_ID:
        raise ConfigError(
            f"node = {config.node!r} is too long for workers: at most {MAX_WORKER_NODE_ID}"
            " characters leave room for the worker suffix"
        )
    if config.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log_level = {config.log_level!r} is not debug, info, warning or error")
    for key in (
        "max_clock_skew",
        "retention_days",
        "compaction_interval",
        "cache_ttl",
        "header_timeout",
        "body_timeout",
        "webhook_timeout",
        "webhook_max_attempts",
        "webhook_backoff_base",
        "webhook_backoff_cap",
        "webhook_concurrency",
        "webhook_log_retention_days",
        "files_max_size",
        "files_url_ttl",
        "files_upload_lifetime",
        "files_gc_grace",
        "files_gc_interval",
    ):
        if getattr(config, key) <= 0:
            raise ConfigError(f"{key} = {getattr(config, key)!r} must be positive")
    for key in ("drain_grace", "drain_timeout", "max_connections_per_address"):
        if getattr(config, key) < 0:
            raise ConfigError(f"{key} = {getattr(config, key)!r} must not be negative")
    for key in (
        "max_realtime_connections",
        "realtime_heartbeat",
        "realtime_queue",
        "realtime_admission_rate",
        "realtime_admission_burst",
    ):
        if getattr(config, key) <= 0:
            raise ConfigError(f"{key} = {getattr(config, key)!r} must be positive")
    if not 0 < config.realtime_fanout_share <= 1:
        raise ConfigError(
            f"realtime_fanout_share = {config.realtime_fanout_share!r} must be in (0, 1]"
        )
    if config.realtime_admission_wait < 0:
        raise ConfigError(
            f"realtime_admission_wait = {config.realtime_admission_wait!r} must not be negative"
        )
    if config.cors_max_age < 0:
        raise ConfigError(f"cors_max_age = {config.cors_max_age!r} must not be negative")
    for origin in config.cors_origins:
        if origin != "*" and not _is_origin(origin):
            raise ConfigError(
                f"cors_origins names {origin!r}: an origin is lower-case scheme://host[:port]"
                ' (no path, as a browser sends it), or "*"'
            )
    unknown = set(config.enabled_realtime_transports) - set(REALTIME_TRANSPORTS)
    if unknown:
        raise ConfigError(
            f"realtime_transports = {config.realtime_transports!r} names {sorted(unknown)};"
            f" use a comma-separated subset of {list(REALTIME_TRANSPORTS)} (or empty)"
        )
    if config.webhook_takeover_after <= 2 * config.topology.pull_wait:
        # A live peer answers an idle long-poll only every pull_wait seconds.
        raise ConfigError(
            f"webhook_takeover_after = {config.webhook_takeover_after!r} must be more than twice"
            f" topology.pull_wait = {config.topology.pull_wait!r}"
        )
    if config.webhook_backoff_cap < config.webhook_backoff_base:
        raise ConfigError(
            f"webhook_backoff_cap = {config.webhook_backoff_cap!r} must be at least"
            f" webhook_backoff_base = {config.webhook_backoff_base!r}"
        )
    if config.realtime_timeout <= config.realtime_heartbeat:
        raise ConfigError(
            f"realtime_timeout = {config.realtime_timeout!r} must be longer than"
            f" realtime_heartbeat = {config.realtime_heartbeat!r}"
        )


def _is_origin(value: str) -> bool:
    """True for a serialised origin as browsers send it: lower case, no path, no credentials."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return False
    return (
        value == value.lower()
        and bool(parts.scheme and parts.hostname)
        and "@" not in parts.netloc
        and not (parts.path or parts.query or parts.fragment)
        and value == f"{parts.scheme}://{parts.netloc}"
    )
