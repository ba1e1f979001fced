"""A real OpenID Connect provider for tests (the ``oidc-provider`` npm package in
tests/auth/oidc_provider, run by Node.js on loopback) and an HTTP stand-in for the user's browser
that signs in on its development login and consent pages."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from tests.conftest import free_port
from tests.services import require_installed, require_program

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
CLIENT_ID = "mobile-app"
REDIRECT_URI = "com.example.app:/oauth2redirect"
FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"', re.IGNORECASE)
PROMPT = re.compile(r'name="prompt" value="([a-z]+)"')


@dataclass
class Provider:
    """A running provider: its issuer URL."""

    issuer: str
    process: subprocess.Popen[str]


@contextlib.contextmanager
def run_provider(port: int, keys: Path | None = None) -> Iterator[Provider]:
    """The provider on ``port`` (signing with the first of ``keys``' private JWKs, publishing
    them all; development keys without), stopped on exit."""
    node = require_program("node")
    require_installed(PROVIDER_DIR / "node_modules" / "oidc-provider", "the test OIDC provider")
    argv = [node, "provider.mjs", str(port), *([str(keys)] if keys is not None else [])]
    process = subprocess.Popen(
        argv, cwd=PROVIDER_DIR, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until "ready ..." or the process dies
        assert line.startswith("ready "), f"the OIDC provider did not start: {line!r}"
        yield Provider(line.split()[1], process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[Provider]:
    """The provider on a free loopback port for the tests of one module."""
    with run_provider(free_port()) as provider:
        yield provider


def new_verifier() -> str:
    """A PKCE code verifier (what the app keeps)."""
    return secrets.token_urlsafe(48)


def challenge(verifier: str) -> str:
    """Its S256 challenge (what the app sends to start)."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def browser_sign_in(authorize_url: str, login: str) -> dict[str, str]:
    """Follow the provider's pages as a browser would, sign in as ``login`` and consent;
    answers the query the provider sends to the app's redirect URI (``code``, ``state``)."""
    async with httpx.AsyncClient(timeout=10) as browser:
        url, method, form = authorize_url, "GET", None
        for _ in range(12):
            response = await browser.request(method, url, data=form)
            location = response.headers.get("location")
            if location is not None:
                if location.startswith(REDIRECT_URI):
                    query = parse_qs(urlsplit(location).query)
                    return {key: values[0] for key, values in query.items()}
                url, method, form = urljoin(url, location), "GET", None
                continue
            assert response.status_code == 200, response.text[:500]
            action, prompt = FORM_ACTION.search(response.text), PROMPT.search(response.text)
            assert action is not None and prompt is not None, response.text[-1500:]
            url, method = html.unescape(action.group(1)), "POST"
            form = {"prompt": prompt.group(1)}
            if prompt.group(1) == "login":
                form |= {"login": login, "password": "any password"}
        raise AssertionError("the provider never sent the browser back to the app")


async def token_response(issuer: str, code: str, verifier: str) -> dict[str, object]:
    """The provider's answer to a code exchange done by the app itself (for its ID token)."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": REDIRECT_URI,
                "client_id": CLIENT_ID,
            },
        )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body
