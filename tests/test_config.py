"""Configuration: precedence, validation with clear messages, collections."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from breakwater.cache import open_cache
from breakwater.config import ConfigError, load_config, redact_url
from breakwater.core.errors import SchemaViolation


def write(tmp_path: Path, text: str) -> Path:
    """A TOML file with ``text``."""
    path = tmp_path / "breakwater.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file() -> None:
    """With nothing given the node listens on 127.0.0.1:8080 with data in ./data."""
    config = load_config(None, env={})
    assert (config.host, config.port, config.region) == ("127.0.0.1", 8080, "local")
    assert config.store_url == "sqlite:///data/breakwater.db"


def test_precedence_is_defaults_toml_env_flags(tmp_path: Path) -> None:
    """A flag beats the environment, which beats the file, which beats the default."""
    file = write(tmp_path, 'port = 9001\nregion = "eu"\nnode = "eu-1"\n')
    env = {"BREAKWATER_PORT": "9002", "BREAKWATER_REGION": "us"}
    config = load_config(file, env=env, overrides={"port": 9003})
    assert config.port == 9003
    assert config.region == "us"
    assert config.node == "eu-1"


def test_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    """BREAKWATER_CONFIG names the file when no --config is given."""
    file = write(tmp_path, "port = 9100\n")
    assert load_config(None, env={"BREAKWATER_CONFIG": str(file)}).port == 9100


def test_limits_read_from_file_and_environment(tmp_path: Path) -> None:
    """[limits] and BREAKWATER_LIMITS_* set the input limits."""
    file = write(tmp_path, "[limits]\nmax_body_bytes = 2048\n")
    config = load_config(file, env={"BREAKWATER_LIMITS_MAX_MUTATIONS_PER_PUSH": "7"})
    assert config.limits.max_body_bytes == 2048
    assert config.limits.max_mutations_per_push == 7


def test_realtime_settings_read_from_file_and_environment(tmp_path: Path) -> None:
    """Realtime knobs and the bus URL follow the generic key / BREAKWATER_KEY rule."""
    file = write(tmp_path, "realtime_heartbeat = 5.0\nrealtime_timeout = 12.5\n")
    env = {"BREAKWATER_MAX_REALTIME_CONNECTIONS": "250", "BREAKWATER_BUS": "memory://"}
    config = load_config(file, env=env)
    assert (config.realtime_heartbeat, config.realtime_timeout) == (5.0, 12.5)
    assert config.max_realtime_connections == 250
    assert config.bus == "memory://"


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("port = 'eighty'", {}, "port = 'eighty' is not a valid int"),
        ("", {"BREAKWATER_PORT": "x"}, "BREAKWATER_PORT = 'x' is not a valid int"),
        (
            "",
            {"BREAKWATER_PORT": "\u0668\u0660"},
            "BREAKWATER_PORT = '\u0668\u0660' is not a valid int",
        ),
        ("", {"BREAKWATER_PORT": "\uff18\uff10"}, "is not a valid int"),
        ("", {"BREAKWATER_MAX_CLOCK_SKEW": "\u0666\u0660"}, "is not a valid float"),
        ("", {"BREAKWATER_AUTH_MFA_ROLES": "admin,,ops"}, "is not a valid tuple"),
        ("[auth]\nmfa_roles = ['admin', '']", {}, "is not a valid tuple"),
        ("port = 70000", {}, "port = 70000 is not a TCP port"),
        ("region = 'has space'", {}, "region = 'has space' must match"),
        ("region = 'eu~1'", {}, "region = 'eu~1' must match"),  # ~ joins the incarnation
        (f"region = '{'r' * 49}'", {}, "must match"),  # region~incarnation fits an origin
        ("colour = 'blue'", {}, "unknown settings"),
        ("[limits]\nmax_body_bytes = 0", {}, "limits.max_body_bytes = 0 must be positive"),
        ("[limits]\nmystery = 1", {}, "limits must be a table with keys"),
        ("[limits]\nmax_depth = 500", {}, "limits.max_depth = 500 must be at most 200"),
        ("[collections.todos]\nconflict = 'random'", {}, "conflict must be 'field' or 'document'"),
        ("[collections.todos]\nindexes = ['a b']", {}, "is not a field name"),
        ("[collections.todos]\nschema = { type = 12 }", {}, "is not a valid JSON Schema"),
        ("[collections.todos]\nsorting = 1", {}, "unknown settings"),
        ("[collections.9bad]\n", {}, "not a valid collection name"),
        ("log_level = 'loud'", {}, "log_level = 'loud'"),
        ("port = ", {}, "is not valid TOML"),
        ("max_realtime_connections = 0", {}, "max_realtime_connections = 0 must be positive"),
        ("realtime_queue = -1", {}, "realtime_queue = -1 must be positive"),
        ("realtime_fanout_share = 0", {}, "realtime_fanout_share = 0.0 must be in (0, 1]"),
        ("realtime_fanout_share = 1.5", {}, "realtime_fanout_share = 1.5 must be in (0, 1]"),
        ("realtime_admission_wait = -1.0", {}, "realtime_admission_wait = -1.0 must not be"),
        ("header_timeout = 0", {}, "header_timeout = 0.0 must be positive"),
        ("body_timeout = -1", {}, "body_timeout = -1.0 must be positive"),
        ("max_connections_per_address = -1", {}, "max_connections_per_address = -1 must not"),
        (
            "realtime_heartbeat = 30.0\nrealtime_timeout = 30.0",
            {},
            "realtime_timeout = 30.0 must be longer than realtime_heartbeat = 30.0",
        ),
    ],
)
def test_bad_settings_fail_naming_key_and_value(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    """Every bad value fails at startup with a message naming it."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(write(tmp_path, toml), env=env)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    """A config path that does not exist is named in the error."""
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "absent.toml", env={})


def test_collection_schema_validates_documents(tmp_path: Path) -> None:
    """A collection's inline JSON Schema becomes its validator."""
    file = write(
        tmp_path,
        '[collections.todos]\nschema = { type = "object", required = ["title"] }\n',
    )
    todos = load_config(file, env={}).collections["todos"]
    todos.validate({"title": "x"})
    with pytest.raises(SchemaViolation) as caught:
        todos.validate({"done": True})
    assert caught.value.extra["errors"][0]["message"] == "'title' is a required property"


def test_collection_schema_can_live_in_a_json_file(tmp_path: Path) -> None:
    """schema_file loads a JSON Schema relative to the config file."""
    (tmp_path / "todo.json").write_text('{"type": "object", "maxProperties": 1}')
    file = write(tmp_path, '[collections.todos]\nschema_file = "todo.json"\n')
    with pytest.raises(SchemaViolation):
        load_config(file, env={}).collections["todos"].validate({"a": 1, "b": 2})


def test_redact_url_hides_passwords() -> None:
    """Store URLs are logged without their password."""
    assert redact_url("postgresql://bw:s3cret@db:5432/bw") == "postgresql://bw:***@db:5432/bw"
    assert redact_url("sqlite:///data/x.db") == "sqlite:///data/x.db"


def test_cli_reports_config_errors_with_a_hint(tmp_path: Path) -> None:
    """`breakwater serve` with a bad setting exits 2 with one Error: line and a Try: hint."""
    result = subprocess.run(
        [sys.executable, "-m", "breakwater", "serve", "--config", str(tmp_path / "none.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("Error: config file")
    assert lines[1].startswith("Try: ")


def test_cli_names_an_unusable_data_directory(tmp_path: Path) -> None:
    """A data directory that cannot be created is one Error: line, not a traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "breakwater", "serve", "--data", str(blocker / "sub")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("Error: data = ")
    assert "Traceback" not in result.stderr


def test_cli_hides_the_password_of_an_unsupported_store_url(tmp_path: Path) -> None:
    """An unknown store scheme lists the supported ones and never prints the password."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "breakwater",
            "serve",
            "--data",
            str(tmp_path),
            "--store",
            "mysql://bw:hunter2@db/bw",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "supported: sqlite" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_clock_offset_shifts_the_node_clock() -> None:
    """BREAKWATER_CLOCK_OFFSET_MS (test-only) moves the node's HLC physical time."""
    from breakwater.core.hlc import system_ms
    from breakwater.server.app import build_node

    config = load_config(env={"BREAKWATER_CLOCK_OFFSET_MS": "-90000"})
    assert config.clock_offset_ms == -90_000
    clock = build_node(config).clock
    assert abs(clock.physical() - (system_ms() - 90_000)) < 5_000


def test_realtime_transports_parse_and_refuse_unknown_names(tmp_path: Path) -> None:
    """realtime_transports is a comma-separated subset of websocket, sse (empty allowed)."""
    assert load_config(None, env={}).enabled_realtime_transports == {"websocket", "sse"}
    only_sse = load_config(write(tmp_path, 'realtime_transports = " sse "\n'), env={})
    assert only_sse.enabled_realtime_transports == {"sse"}
    none = load_config(write(tmp_path, 'realtime_transports = ""\n'), env={})
    assert none.enabled_realtime_transports == frozenset()
    with pytest.raises(ConfigError, match="realtime_transports = 'sse,smoke'"):
        load_config(write(tmp_path, 'realtime_transports = "sse,smoke"\n'), env={})


@pytest.mark.parametrize("raw", ["\u0661\u0660", "\uff11\uff10", "\u00b2"])
def test_a_cache_url_size_in_non_ascii_digits_is_refused(raw: str) -> None:
    """int() reads Arabic-Indic and fullwidth digits; a URL parameter must not."""
    with pytest.raises(ConfigError, match="max_entries"):
        open_cache(f"memory://?max_entries={raw}")


def test_smtp_reads_from_file_and_environment_and_hides_its_password(tmp_path: Path) -> None:
    """[smtp] from the file, the password from BREAKWATER_SMTP_PASSWORD; never in repr."""
    file = write(
        tmp_path,
        '[smtp]\nhost = "smtp.example.com"\nsecurity = "ssl"\nport = 465\n'
        'from_address = "no-reply@example.com"\n',
    )
    config = load_config(file, env={"BREAKWATER_SMTP_PASSWORD": "s3cret-pass"})
    assert config.smtp.enabled and config.smtp.port == 465 and config.smtp.security == "ssl"
    assert config.smtp.password == "s3cret-pass"
    assert "s3cret-pass" not in repr(config)
    assert not load_config(None, env={}).smtp.enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[smtp]\nsecurity = "tls"', "smtp.security"),
        ("[smtp]\nport = 0", "smtp.port"),
        ("[smtp]\ntimeout = 0", "smtp.timeout"),
        ('[smtp]\nhost = "mail"', "smtp.from_address"),
        ('[smtp]\nbase_url = "ftp://x"', "smtp.base_url"),
        ('[smtp]\nsender = "x"', "smtp must be a table"),
    ],
)
def test_bad_smtp_settings_fail_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    """Each bad [smtp] value is a ConfigError naming its key."""
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), env={})
