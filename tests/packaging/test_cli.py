"""``breakwater --version``, and the commands of breakwater-tools naming the extra to install
when the toolkit is missing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

import pytest
from typer.testing import CliRunner

import breakwater
from breakwater.cli.main import app, main


def test_version_prints_the_package_version() -> None:
    """--version prints ``breakwater <version>`` and exits 0."""
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"breakwater {breakwater.__version__}\n"


class NotInstalled:
    """An import finder that fails a package as the import system does when it is absent."""

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == self.package:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@pytest.mark.parametrize(
    ("missing", "argv"),
    [
        ("breakwater.bench", ["bench", "push"]),
        ("breakwater.chaos", ["verify", "scenarios/ci.yaml"]),
        ("breakwater.chaos", ["chaos", "check", "history.jsonl"]),
    ],
)
def test_a_tools_command_without_the_tools_names_the_extra(
    missing: str,
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without breakwater-tools the command exits 2 with one Error line and the install hint."""
    for name in list(sys.modules):
        if name == missing or name.startswith(f"{missing}."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [NotInstalled(missing), *sys.meta_path])
    monkeypatch.setattr(sys, "argv", ["breakwater", *argv])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert f"({missing})" in error
    assert "Try: pip install 'breakwater-server[tools]'" in error


def test_the_cli_imports_without_the_tools() -> None:
    """A server install without breakwater-tools can still load every command module (a
    module-level import of bench or chaos in a cli module would break even `serve`)."""
    blocked = "import sys\n" + "\n".join(
        [
            "class NotInstalled:",
            "    def find_spec(self, name, path, target=None):",
            "        if name.startswith(('breakwater.bench', 'breakwater.chaos')):",
            "            raise ModuleNotFoundError(name, name=name)",
            "sys.meta_path.insert(0, NotInstalled())",
            "import breakwater.cli.main",
        ]
    )
    subprocess.run([sys.executable, "-c", blocked], check=True, timeout=60)
