"""docs/configuration.md's worked example runs as written on docs/examples/breakwater.toml.

Its ``text`` blocks are a shell transcript: ``$ `` lines are commands, the lines after one are
what it printed. The node is started from the example file (on a free port, in place of the
documented 9090), and every other command runs in one bash session against it.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.doc_examples import matches, run_in_one_shell

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
EXAMPLE = ROOT / "docs" / "examples" / "breakwater.toml"


def transcript() -> list[tuple[str, str]]:
    """``(command, shown output)`` of every ``$`` line of the worked example, in order."""
    section = DOC.read_text().split("Check that a file loads", 1)[1].split("\n## ", 1)[0]
    steps: list[tuple[str, str]] = []
    for block in re.findall(r"```text\n(.*?)```", section, flags=re.S):
        for chunk in re.split(r"(?m)^\$ ", block)[1:]:
            command, _, shown = chunk.partition("\n")
            steps.append((command, shown))
    return steps


@pytest.mark.skipif(shutil.which("curl") is None, reason="the example needs curl")
def test_the_configuration_example_runs_as_written(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    steps = transcript()
    serve = [command for command, _ in steps if "breakwater serve" in command]
    assert len(serve) == 1 and "--config docs/examples/breakwater.toml" in serve[0]
    node = start_server(tmp_path / "data", "--config", str(EXAMPLE))
    port = node.url.rsplit(":", 1)[1]
    run = [(c, s) for c, s in steps if "breakwater serve" not in c]
    commands = [
        command.replace("127.0.0.1:9090", f"127.0.0.1:{port}").replace(
            "../../.venv/bin/python",
            sys.executable,  # this checkout's interpreter
        )
        for command, _ in run
    ]
    for (command, shown), actual in zip(run, run_in_one_shell(commands, ROOT), strict=True):
        assert matches(shown, actual), f"$ {command}\ndocs show:\n{shown}\nran:\n{actual}"
