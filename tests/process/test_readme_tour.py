"""The README's 5-minute tour works as written: every command, in order, against a fresh node.

Each ``sh`` block of the tour runs in one bash session (later commands use variables set by
earlier ones), with the node's port in place of 8080. Where the README shows an output (the
``text`` block after the commands), the real output must match it, once the values that differ
on every run (stamps, versions, request ids, dates) are masked and the README's ``…`` (left-out
members) may stand for anything.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.doc_examples import matches, run_in_one_shell

README = Path(__file__).resolve().parents[2] / "README.md"
TOUR = "## A 5-minute tour"


@dataclass(frozen=True)
class Step:
    """The commands of one ``sh`` block and the output the README shows after it (if any)."""

    commands: str
    shown: str | None


def tour_steps(text: str) -> list[Step]:
    """The tour's steps, in order."""
    section = text.split(TOUR, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)
    steps: list[Step] = []
    for index, (kind, body) in enumerate(blocks):
        if kind != "sh":
            continue
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        shown = following[1] if following is not None and following[0] == "text" else None
        steps.append(Step(body, shown))
    return steps


def test_the_tour_is_parsed_into_its_steps() -> None:
    """The parser finds the tour's commands and the outputs shown for them."""
    steps = tour_steps(README.read_text())
    assert len(steps) >= 15
    assert steps[0].commands.startswith("curl -s -X PUT")
    assert steps[0].shown is not None and '"title":"Buy milk"' in steps[0].shown
    assert matches('{"a":1,…,"d":4}', '{"a":1,"b":2,"c":3,"d":4}')
    assert not matches('{"a":1,…,"d":4}', '{"a":2,"b":2,"c":3,"d":4}')


@pytest.mark.skipif(shutil.which("curl") is None, reason="the tour needs curl")
def test_the_readme_tour_runs_as_written(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server()
    steps = tour_steps(README.read_text())
    commands = [step.commands.replace("http://127.0.0.1:8080", server.url) for step in steps]
    outputs = run_in_one_shell(commands, tmp_path)
    for number, (step, actual) in enumerate(zip(steps, outputs, strict=True), start=1):
        if step.shown is not None:
            assert matches(step.shown, actual), (
                f"step {number}:\n{step.commands}\nREADME shows:\n{step.shown}\nran:\n{actual}"
            )
