"""``[tracing]``: defaults, precedence with OpenTelemetry's own variables, validation, and the
OTLP exporter and sampler built from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider

from breakwater.config import ConfigError, load_config
from breakwater.obs.tracing import Tracing, build_tracing, otlp_exporter
from breakwater.obs.tracing_settings import TracingSettings


def config_file(tmp_path: Path, text: str) -> Path:
    """A TOML file holding ``text``."""
    path = tmp_path / "breakwater.toml"
    path.write_text(text)
    return path


def test_tracing_is_off_by_default() -> None:
    """No ``[tracing]``: off, every span kept when turned on, named breakwater."""
    assert load_config(None, env={}).tracing == TracingSettings()
    assert TracingSettings().enabled is False


def test_the_table_then_breakwater_variables_then_nothing_else(tmp_path: Path) -> None:
    """``BREAKWATER_TRACING_*`` beats ``[tracing]``."""
    file = config_file(
        tmp_path,
        '[tracing]\nenabled = true\nendpoint = "http://collector:4318/v1/traces"\n'
        'sampler_ratio = 0.5\nservice_name = "api"\n',
    )
    settings = load_config(file, env={"BREAKWATER_TRACING_SAMPLER_RATIO": "0.25"}).tracing
    assert settings == TracingSettings(True, "http://collector:4318/v1/traces", 0.25, "api")


def test_opentelemetry_variables_fill_in_what_breakwater_leaves_unset(tmp_path: Path) -> None:
    """``OTEL_SERVICE_NAME`` and ``OTEL_TRACES_SAMPLER_ARG`` apply unless the config says."""
    env = {
        "BREAKWATER_TRACING_ENABLED": "true",
        "OTEL_SERVICE_NAME": "edge",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    }
    assert load_config(None, env=env).tracing == TracingSettings(True, "", 0.1, "edge")
    file = config_file(tmp_path, '[tracing]\nservice_name = "api"\n')
    assert load_config(file, env=env).tracing.service_name == "api"


def test_otel_sdk_disabled_turns_tracing_off(tmp_path: Path) -> None:
    """``OTEL_SDK_DISABLED=true`` wins over ``enabled``, as every OpenTelemetry SDK does."""
    file = config_file(tmp_path, "[tracing]\nenabled = true\n")
    assert load_config(file, env={"OTEL_SDK_DISABLED": "true"}).tracing.enabled is False


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[tracing]\nsampler_ratio = 1.5\n", {}, "tracing.sampler_ratio = 1.5"),
        ("", {"OTEL_TRACES_SAMPLER_ARG": "lots"}, "OTEL_TRACES_SAMPLER_ARG = 'lots'"),
        ("[tracing]\nenabled = 'sometimes'\n", {}, "tracing.enabled = 'sometimes'"),
        ("[tracing]\nendpoint = 'collector:4318'\n", {}, "must be an http(s) URL"),
        ("[tracing]\nservice_name = ''\n", {}, "service_name must not be empty"),
        ("[tracing]\nexporter = 'zipkin'\n", {}, "tracing must be a table with keys"),
    ],
)
def test_a_bad_tracing_setting_fails_at_startup_naming_it(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    """A bad value names the key and the value."""
    file = config_file(tmp_path, text or "port = 8080\n")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(file, env=env)


def test_the_otlp_exporter_sends_to_the_configured_endpoint() -> None:
    """``endpoint`` is where the OTLP/HTTP exporter posts spans."""
    exporter = otlp_exporter(TracingSettings(True, "http://collector:4318/v1/traces"))
    assert isinstance(exporter, OTLPSpanExporter)
    assert exporter._endpoint == "http://collector:4318/v1/traces"
    exporter.shutdown()  # type: ignore[no-untyped-call]


def test_without_an_endpoint_the_exporter_follows_the_otel_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No ``endpoint``: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` decides (the exporter reads it)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://other:4318/v1/traces")
    exporter = otlp_exporter(TracingSettings(True))
    assert isinstance(exporter, OTLPSpanExporter)
    assert exporter._endpoint == "http://other:4318/v1/traces"
    exporter.shutdown()  # type: ignore[no-untyped-call]


def test_a_built_tracing_names_the_service_node_and_region() -> None:
    """The node's spans carry service name, instance (the node id) and region."""
    tracing = build_tracing(TracingSettings(True, service_name="api"), "eu-1", "eu")
    assert isinstance(tracing.provider, TracerProvider)
    attributes = tracing.provider.resource.attributes
    assert attributes["service.name"] == "api"
    assert attributes["service.instance.id"] == "eu-1"
    assert attributes["cloud.region"] == "eu"
    tracing.shutdown()


def test_the_sampler_keeps_a_trace_everywhere_or_nowhere() -> None:
    """Nodes with the same ratio take the same decision for a trace id, whatever the
    caller's ``sampled`` flag says."""
    low, high = "0" * 16 + "0000000000000001", "0" * 16 + "ffffffffffffffff"
    decisions = []
    for _ in range(2):
        tracing = build_tracing(TracingSettings(True, sampler_ratio=0.5), "n", "r")
        for trace_id, flags in ((low, "00"), (high, "01")):
            parent = Tracing.extract({"traceparent": f"00-{trace_id}-00f067aa0ba902b7-{flags}"})
            span = tracing.start_server_span("GET", parent, {})
            decisions.append(span.is_recording())
            span.end()
        tracing.shutdown()
    assert decisions == [True, False, True, False]
