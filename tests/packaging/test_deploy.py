"""The deployment files (deploy/), checked statically, and the image's command run as a plain
process with the image's environment: it starts, passes its healthcheck, and drains on SIGTERM
(/readyz 503, then exit 0). No container engine runs here (docs/deploy.md#what-was-checked)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def dockerfile() -> tuple[dict[str, str], list[str], list[str]]:
    """The final stage's ENV, CMD and HEALTHCHECK command of deploy/Dockerfile."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    final = text[text.rindex("\nFROM ") :]
    env = dict(re.findall(r"(\w+)=(\S+)", re.search(r"\nENV (.*)", final).group(1)))  # type: ignore[union-attr]
    command = json.loads(re.search(r"\nCMD (\[.*\])", final).group(1))  # type: ignore[union-attr]
    health = json.loads(re.search(r"HEALTHCHECK .*?CMD (\[.*\])", final).group(1))  # type: ignore[union-attr]
    return env, command, health


def drain_seconds(env: dict[str, str]) -> float:
    """How long a drain may take at most: drain_grace plus drain_timeout."""
    return float(env["BREAKWATER_DRAIN_GRACE"]) + float(env["BREAKWATER_DRAIN_TIMEOUT"])


def test_the_image_runs_as_a_non_root_user_with_data_on_a_volume() -> None:
    """The final stage switches to a numeric non-root user and declares /data a volume."""
    text = (DEPLOY / "Dockerfile").read_text()
    final = text[text.rindex("\nFROM ") :]
    assert re.search(r"\nUSER [1-9]\d*\n", final)
    env, _, _ = dockerfile()
    assert env["BREAKWATER_DATA"] == "/data" and 'VOLUME ["/data"]' in final


def test_kubernetes_probes_budget_and_grace_cover_the_drain() -> None:
    """Readiness on /readyz, liveness on /healthz, a PodDisruptionBudget, and a grace period
    longer than the image's drain."""
    docs: list[dict[str, Any]] = list(
        yaml.safe_load_all((DEPLOY / "kubernetes/breakwater.yaml").read_text())
    )
    kinds = {doc["kind"]: doc for doc in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget"} <= set(kinds)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env, _, _ = dockerfile()
    assert pod["terminationGracePeriodSeconds"] > drain_seconds(env) + 2  # + the preStop sleep
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_compose_waits_longer_than_the_drain() -> None:
    """Every node of the compose region gets a stop grace period longer than the drain."""
    compose = yaml.safe_load((DEPLOY / "compose/compose.yaml").read_text())
    nodes = [s for name, s in compose["services"].items() if name.startswith("node-")]
    env, _, _ = dockerfile()
    assert len(nodes) >= 2
    for service in nodes:
        assert float(service["stop_grace_period"].removesuffix("s")) > drain_seconds(env)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_systemd_unit_verifies() -> None:
    """systemd-analyze finds nothing wrong but the absent executable of a machine without it."""
    unit = DEPLOY / "systemd/breakwater.service"
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True
    )
    problems = [line for line in result.stderr.splitlines() if "is not executable" not in line]
    assert problems == []


@pytest.mark.slow
def test_the_image_command_starts_passes_its_healthcheck_and_drains(tmp_path: Path) -> None:
    """CMD with the image's environment (its data folder and port moved to this test's): the
    healthcheck passes, and on SIGTERM /readyz turns 503 and the process exits 0."""
    env, command, health = dockerfile()
    port = free_port()
    env |= {"BREAKWATER_DATA": str(tmp_path / "data"), "BREAKWATER_PORT": str(port)}
    # The image's PATH finds `breakwater` and `python` of its install: here, this venv's.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env |= {"BREAKWATER_DRAIN_TIMEOUT": "5", "PATH": path}
    log = tmp_path / "node.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert process.poll() is None, log.read_text()
            if subprocess.run(health, env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        assert subprocess.run(health, env=env, capture_output=True).returncode == 0, log.read_text()
        process.send_signal(signal.SIGTERM)
        status = 200
        for _ in range(40):  # within drain_grace (5 s) readyz answers 503
            with contextlib.suppress(httpx.HTTPError):
                status = httpx.get(f"{url}/readyz", timeout=1).status_code
            if status == 503:
                break
            time.sleep(0.1)
        assert status == 503
        assert subprocess.run(health, env=env, capture_output=True).returncode != 0
        assert process.wait(timeout=drain_seconds(env) + 10) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()


def test_the_compose_load_balancer_configuration_is_valid() -> None:
    """``haproxy -c`` accepts the region's HAProxy configuration; its only warnings are the node
    names that resolve inside compose alone (those servers wait until they do)."""
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        reason = "haproxy is not installed (Debian's haproxy package; .ci/run installs it)"
        if os.environ.get("BREAKWATER_REQUIRE_SERVICES") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    result = subprocess.run(
        [haproxy, "-c", "-f", str(DEPLOY / "compose/haproxy.cfg")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "[WARNING]" in line]
    assert warnings and all("could not resolve address" in line for line in warnings)
