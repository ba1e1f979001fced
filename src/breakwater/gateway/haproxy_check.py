"""Finding the ``haproxy`` program and having it check a configuration (``haproxy -c``)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from breakwater.gateway.plan import GatewayError

DEBIAN_PATH = Path("/usr/sbin/haproxy")
"""Where Debian's package puts it (outside a non-root user's PATH)."""
CHECK_SECONDS = 30.0


def haproxy_program() -> str:
    """The path of ``haproxy``: on PATH, else Debian's; :class:`GatewayError` if neither."""
    found = shutil.which("haproxy")
    if found:
        return found
    if DEBIAN_PATH.exists():
        return str(DEBIAN_PATH)
    raise GatewayError("haproxy is not installed (on Debian: apt-get install haproxy)")


def check_config(text: str, program: str | None = None) -> None:
    """Raise :class:`GatewayError` with HAProxy's own words unless it accepts ``text``."""
    program = program or haproxy_program()
    with tempfile.TemporaryDirectory(prefix="breakwater-haproxy-") as folder:
        path = Path(folder) / "haproxy.cfg"
        path.write_text(text)
        try:
            result = subprocess.run(
                [program, "-c", "-f", str(path)],
                capture_output=True,
                text=True,
                timeout=CHECK_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GatewayError(f"could not run {program} -c: {exc}") from exc
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().replace(str(path), "haproxy.cfg")
        raise GatewayError(f"haproxy refused the configuration:\n{said}")
