"""The three distributions (docs/adr/0020-distributions.md) built from this checkout: together
they ship every file of src/breakwater exactly once, the SDK installs alone in a fresh venv with
at most ten packages and runs the docs/sdk.md quick start against a node of a fresh server
install, and that server install names the extra that `breakwater bench` needs."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import tomllib
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import breakwater
from tests.conftest import free_port
from tests.process.test_sdk_doc_example import assert_prints_what_it_says, run_first_example

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = {
    "breakwater-server": ROOT,
    "breakwater-sdk": ROOT / "sdks/python",
    "breakwater-tools": ROOT / "tools",
}
SDK_MAX_PACKAGES = 10  # the SDK and what it pulls in (issue 24)


@dataclass(frozen=True)
class Venv:
    """A fresh virtual environment."""

    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def pip(self, *args: str) -> str:
        return subprocess.run(
            [self.python, "-m", "pip", "--disable-pip-version-check", *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        ).stdout


def fresh_venv(path: Path) -> Venv:
    """A new venv with pip (and whatever ``venv`` puts in it, which is not counted)."""
    venv.EnvBuilder(with_pip=True).create(path)
    return Venv(path)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three wheels, built from this checkout."""
    out = tmp_path_factory.mktemp("wheels")
    projects = [str(path) for path in PROJECTS.values()]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), *projects],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


def wheel_files(wheels: Path, distribution: str) -> set[str]:
    """The package files (not the metadata) in a distribution's wheel."""
    (wheel,) = wheels.glob(f"{distribution.replace('-', '_')}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if name.startswith("breakwater/")}


def test_versions_and_pins_agree_with_the_package() -> None:
    """Every distribution has the package's version and pins its siblings to it."""
    version = breakwater.__version__
    for path in PROJECTS.values():
        project = tomllib.loads((path / "pyproject.toml").read_text())["project"]
        assert project["version"] == version
        requirements = project["dependencies"] + project.get("optional-dependencies", {}).get(
            "tools", []
        )
        for requirement in requirements:
            if requirement.startswith("breakwater-"):
                assert requirement.endswith(f"=={version}"), requirement


def test_the_wheels_ship_every_source_file_exactly_once(wheels: Path) -> None:
    """Each .py under src/breakwater (and py.typed, the layouts) is in exactly one wheel."""
    source = ROOT / "src"
    expected = {
        path.relative_to(source).as_posix()
        for path in source.joinpath("breakwater").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    shipped = [wheel_files(wheels, name) for name in PROJECTS]
    assert set().union(*shipped) == expected
    assert sum(len(files) for files in shipped) == len(expected)
    sdk = wheel_files(wheels, "breakwater-sdk")
    assert {"breakwater/__init__.py", "breakwater/client/__init__.py"} <= sdk
    assert not any(name.startswith(("breakwater/server/", "breakwater/bench/")) for name in sdk)


@contextlib.contextmanager
def node(server: Venv, data: Path) -> Iterator[str]:
    """A node of the server install, on a free port; stopped with SIGTERM at the end."""
    port = free_port()
    log = data.parent / "node.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(server.path / "bin/breakwater"),
                "serve",
                "--port",
                str(port),
                "--data",
                str(data),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


# Two venvs installed from the registries: the server's now brings cryptography (PyJWT[crypto],
# for external identity providers' keys) and took 117 s of the default 120 on a loaded machine.
@pytest.mark.timeout(300)
def test_the_sdk_installs_alone_and_syncs_with_a_server_install(
    wheels: Path, tmp_path: Path
) -> None:
    """A fresh venv with the SDK only: few packages, no server code, and the SDK quick start
    runs against a node of a fresh server install."""
    sdk = fresh_venv(tmp_path / "sdk")
    before = set(sdk.pip("list", "--format=freeze").split())
    sdk.pip("install", "-q", "--find-links", str(wheels), "breakwater-sdk")
    added = set(sdk.pip("list", "--format=freeze").split()) - before
    assert len(added) <= SDK_MAX_PACKAGES, sorted(added)
    assert not any(line.lower().startswith(("fastapi", "uvicorn", "asyncpg")) for line in added)

    server = fresh_venv(tmp_path / "server")
    server.pip("install", "-q", "--find-links", str(wheels), "breakwater-server")
    with node(server, tmp_path / "data") as url:
        assert_prints_what_it_says(run_first_example(sdk.python, url, tmp_path))

    bench = subprocess.run(
        [str(server.path / "bin/breakwater"), "bench", "push"], capture_output=True, text=True
    )
    assert bench.returncode == 2
    assert "pip install 'breakwater-server[tools]'" in bench.stderr
