"""The first example of docs/sdk.md runs as written against a node and prints what it says."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ServerProcess

SDK_DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def first_example() -> str:
    """The first ``python`` block of docs/sdk.md."""
    match = re.search(r"```python\n(.*?)```", SDK_DOC.read_text(), flags=re.S)
    assert match is not None, "docs/sdk.md has no python example"
    return match.group(1)


def run_first_example(python: str, url: str, cwd: Path) -> list[str]:
    """The first three lines the example prints with ``python`` against the node at ``url``."""
    code = first_example().replace("http://127.0.0.1:8080", url)
    assert "phone.db" in code and url in code
    program = subprocess.Popen(
        [python, "-u", "-c", code],  # unbuffered: the example never exits
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert program.stdout is not None
    lines: list[str] = []
    try:
        # The example ends in a live query that never returns: read its first three lines.
        for line in program.stdout:
            lines.append(line.rstrip("\n"))
            if len(lines) == 3:
                break
    finally:
        program.kill()
        _, errors = program.communicate(timeout=30)
    assert len(lines) == 3, errors
    return lines


def assert_prints_what_it_says(lines: list[str]) -> None:
    """The example's three lines: the document, the query's result, the live query's titles."""
    got, queried, watched = lines
    assert got.startswith("Document(") and "data={'title': 'Buy milk', 'done': True}" in got
    assert "'title': 'Buy milk'" in queried and "'done': True" in queried
    assert watched == "['Buy milk']"


def test_the_sdk_quick_example_runs_and_prints_what_it_says(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server()
    assert_prints_what_it_says(run_first_example(sys.executable, server.url, tmp_path))
