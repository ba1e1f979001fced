"""No credential reaches a node's output, at any log level, from any logger.

A real node (uvicorn's own access log switched on as an operator might) serves every auth flow:
sign-up, password login, a wrong password, anonymous, refresh, TOTP enrolment and a login with
a recovery code, an API key and a bearer token in the header, ``?access_token=`` on SSE and
WebSocket, a WebSocket with the header and an ``auth`` message, logout and a bad token; then the
mailed flows through a real SMTP server (email verification, password reset, change of email)
and the account's export and deletion. Everything the process writes (stdout and stderr) is
scanned for every secret used, the mailed tokens and the SMTP password included.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import httpx
import pyotp
import pytest
from websockets.sync.client import connect

from tests.auth.mailbox import Mailbox, run_mailbox, token_in
from tests.conftest import _wait_healthy, free_port

pytestmark = pytest.mark.slow
PASSWORD = "correct-horse-battery-4417"
NEW_PASSWORD = "reset-lantern-orbit-5530"
SMTP_PASSWORD = "smtp-pass-kettle-7781"
WRONG_PASSWORD = "wrong-staple-guess-9923"
BAD_TOKEN = "not-a-real-token-5be1c0ffee"
SUBSCRIBE = json.dumps({"type": "subscribe", "collections": ["notes"]})
CONFIG = """
[auth]
password_memory_kib = 64
password_time_cost = 1
rate_auth_per_ip = 1000
burst_auth_per_ip = 1000
"""
# `breakwater serve`, with uvicorn's access log on (the node turns it off: it logs requests
# itself, without query strings), so that uvicorn's own request lines are scanned too.
WITH_UVICORN_ACCESS_LOG = """
import logging
import breakwater.server.runner as runner
from breakwater.cli.main import main

plain = runner.uvicorn_config

def with_access_log(app, config):
    settings = plain(app, config)
    settings.access_log = True
    access = logging.getLogger("uvicorn.access")
    access.disabled = False
    access.propagate = True
    return settings

runner.uvicorn_config = with_access_log
main()
"""


@dataclass
class Secrets:
    """Every secret a flow used; none may appear in the output."""

    values: set[str] = field(default_factory=set)

    def add(self, *values: str) -> None:
        self.values.update(v for v in values if v)

    def session(self, body: dict[str, str]) -> dict[str, str]:
        self.add(body["access_token"], body["refresh_token"])
        return body


@dataclass
class Node:
    url: str
    out: Path
    err: Path


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """The SMTP server the node mails its links to."""
    yield from run_mailbox()


@pytest.fixture
def node_at(tmp_path: Path, mailbox: Mailbox) -> Iterator[Callable[[str], tuple[Node, str]]]:
    """Start a node at a log level, with an admin API key made for it, mailing to ``mailbox``
    (its SMTP password from the environment, as the docs advise)."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(level: str) -> tuple[Node, str]:
        data = tmp_path / level
        config = tmp_path / "node.toml"
        config.write_text(CONFIG + mailbox.config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_")}
        env["BREAKWATER_SMTP_PASSWORD"] = SMTP_PASSWORD
        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "breakwater",
                "keys",
                "create",
                "logs",
                "--scope",
                "admin",
                "--data",
                str(data),
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        api_key = created.stdout.splitlines()[-1]
        port = free_port()
        node = Node(
            f"http://127.0.0.1:{port}", tmp_path / f"{level}.out", tmp_path / f"{level}.err"
        )
        command = [sys.executable, "-c", WITH_UVICORN_ACCESS_LOG, "serve", "--port", str(port)]
        command += ["--data", str(data), "--config", str(config), "--log-level", level]
        command += ["--drain-grace", "0"]
        with node.out.open("wb") as out, node.err.open("wb") as err:
            process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        processes.append(process)
        _wait_healthy(node.url, process, node.err, 30)
        return node, api_key

    yield start
    for process in processes:
        process.kill()
        process.wait(timeout=10)


def drive_every_auth_flow(node: Node, api_key: str, mailbox: Mailbox) -> Secrets:
    secrets = Secrets()
    secrets.add(PASSWORD, WRONG_PASSWORD, BAD_TOKEN, api_key, api_key.rsplit("_", 1)[1])
    secrets.add(NEW_PASSWORD, SMTP_PASSWORD)
    credentials = {"email": "logs@example.com", "password": PASSWORD}
    with httpx.Client(base_url=node.url, timeout=10) as http:
        signed_up = secrets.session(http.post("/v1/auth/signup", json=credentials).json())
        bearer = {"Authorization": f"Bearer {signed_up['access_token']}"}
        assert http.get("/v1/auth/me", headers=bearer).status_code == 200
        wrong = http.post("/v1/auth/login", json={**credentials, "password": WRONG_PASSWORD})
        assert wrong.status_code == 401
        logged_in = secrets.session(http.post("/v1/auth/login", json=credentials).json())
        secrets.session(http.post("/v1/auth/anonymous").json())
        refreshed = secrets.session(
            http.post("/v1/auth/refresh", json={"refresh_token": logged_in["refresh_token"]}).json()
        )
        bearer = {"Authorization": f"Bearer {refreshed['access_token']}"}
        totp = http.post("/v1/auth/mfa/enroll", headers=bearer).json()
        code = pyotp.TOTP(totp["secret"]).now()
        secrets.add(totp["secret"], totp["uri"].split("secret=")[1].split("&")[0], code)
        confirmed = http.post("/v1/auth/mfa/confirm", json={"code": code}, headers=bearer).json()
        secrets.add(*confirmed["recovery_codes"])
        secrets.session(confirmed["session"])
        with_code = {**credentials, "recovery_code": confirmed["recovery_codes"][0]}
        mfa_session = secrets.session(http.post("/v1/auth/login", json=with_code).json())
        assert http.post("/v1/auth/login", json={**credentials, "otp": code}).status_code == 401
        keyed = http.get(
            "/v1/collections/notes/docs", headers={"Authorization": f"ApiKey {api_key}"}
        )
        assert keyed.status_code == 200
        token = mfa_session["access_token"]
        with http.stream("GET", f"/v1/realtime/sse?access_token={token}") as stream:
            assert stream.status_code == 200
            next(stream.iter_bytes())
        bad = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {BAD_TOKEN}"})
        assert bad.status_code == 401
        assert http.get(f"/v1/realtime/sse?access_token={BAD_TOKEN}").status_code == 401
        ws = node.url.replace("http", "ws", 1) + "/v1/realtime"
        with connect(f"{ws}?access_token={token}") as websocket:
            websocket.send(json.dumps({"type": "auth", "token": token}))
            websocket.send(SUBSCRIBE)
            websocket.recv(timeout=10)
        with connect(ws, additional_headers={"Authorization": f"Bearer {token}"}) as websocket:
            websocket.send(SUBSCRIBE)
            websocket.recv(timeout=10)
        out = http.post("/v1/auth/logout", json={"refresh_token": mfa_session["refresh_token"]})
        assert out.status_code == 204
        recovery_code = confirmed["recovery_codes"][1]
        drive_the_mailed_flows(http, mailbox, secrets, mfa_session["access_token"], recovery_code)
    # An unparsable request: uvicorn warns, so even at `warning` the log is not empty.
    with socket.create_connection(("127.0.0.1", int(node.url.rsplit(":", 1)[1]))) as raw:
        raw.sendall(f"GET /?access_token={token} HTTP/1.1\r\nBad Header\r\n\r\n".encode())
        raw.recv(1024)
    return secrets


def drive_the_mailed_flows(
    http: httpx.Client,
    mailbox: Mailbox,
    secrets: Secrets,
    access_token: str,
    recovery_code: str,
) -> None:
    """Verification, reset, change of email, export and deletion; every mailed token is a
    secret."""
    address = "logs@example.com"
    verify = token_in(mailbox_wait(mailbox, address, 1))
    secrets.add(verify)
    assert http.post("/v1/auth/email/verify/confirm", json={"token": verify}).status_code == 200
    assert http.post("/v1/auth/password/reset", json={"email": address}).status_code == 202
    reset = token_in(mailbox_wait(mailbox, address, 2))
    secrets.add(reset)
    body = {"token": reset, "new_password": NEW_PASSWORD}
    assert http.post("/v1/auth/password/reset/confirm", json=body).status_code == 204
    assert http.post("/v1/auth/password/reset/confirm", json=body).status_code == 400
    session = secrets.session(
        http.post(
            "/v1/auth/login",
            json={"email": address, "password": NEW_PASSWORD, "recovery_code": recovery_code},
        ).json()
    )
    bearer = {"Authorization": f"Bearer {session['access_token']}"}
    change = {"new_email": "logs2@example.com", "password": NEW_PASSWORD}
    assert http.post("/v1/auth/email/change", json=change, headers=bearer).status_code == 202
    moved = token_in(mailbox_wait(mailbox, "logs2@example.com", 1))
    secrets.add(moved)
    assert http.post("/v1/auth/email/change/confirm", json={"token": moved}).status_code == 200
    assert http.get("/v1/auth/account/export", headers=bearer).status_code == 200
    gone = {"password": NEW_PASSWORD}
    assert http.post("/v1/auth/account/delete", json=gone, headers=bearer).status_code == 204
    assert http.get("/v1/auth/me", headers={"Authorization": f"Bearer {access_token}"}).is_error


def mailbox_wait(mailbox: Mailbox, address: str, count: int) -> EmailMessage:
    """The ``count``-th mail to ``address`` (the node mails after answering)."""
    deadline = time.monotonic() + 30
    while len(mailbox.to(address)) < count:
        assert time.monotonic() < deadline, f"no mail {count} to {address}"
        time.sleep(0.05)
    return mailbox.to(address)[count - 1]


def output_without_timestamps(node: Node) -> str:
    """Everything the node wrote; timestamps' digits dropped (a TOTP code is six digits)."""
    lines = []
    for line in (node.out.read_text() + node.err.read_text()).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            lines.append(line)
            continue
        record.pop("timestamp", None)
        lines.append(json.dumps(record))
    return "\n".join(lines)


@pytest.mark.parametrize("level", ["debug", "info", "warning"])
def test_no_secret_of_any_auth_flow_reaches_the_output(
    node_at: Callable[[str], tuple[Node, str]], mailbox: Mailbox, level: str
) -> None:
    """Every secret used is absent from stdout and stderr; the request lines are present."""
    node, api_key = node_at(level)
    secrets = drive_every_auth_flow(node, api_key, mailbox)
    output = output_without_timestamps(node)
    leaked = sorted(secret for secret in secrets.values if secret in output)
    assert not leaked, f"{len(leaked)} secrets in the {level} output"
    assert "Invalid HTTP request received." in output
    if level != "warning":
        assert '"event": "request"' in output and "/v1/auth/login" in output
        assert "POST /v1/auth/refresh HTTP/1.1" in output  # uvicorn's access log
        assert "/v1/realtime/sse?[redacted]" in output
        assert "WebSocket /v1/realtime?[redacted]" in output
    if level == "debug":
        assert "< authorization: [redacted]" in output  # websockets' handshake lines
