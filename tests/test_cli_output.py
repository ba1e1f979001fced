"""Reports piped to a file or a log keep their tables whole (rich alone wraps them at 80)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.table import Table

from breakwater.cli.output import report_console

CLI = Path(__file__).resolve().parents[1] / "src" / "breakwater" / "cli"
HEADINGS = [f"a long heading number {n}" for n in range(8)]


def wide_table() -> Table:
    table = Table(title="a report")
    for heading in HEADINGS:
        table.add_column(heading)
    table.add_row(*(f"{n:,}" for n in range(10**6, 10**6 + len(HEADINGS))))
    return table


def test_a_piped_report_keeps_every_heading_on_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    report_console().print(wide_table())
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if HEADINGS[0] in line)
    assert all(heading in header for heading in HEADINGS)
    assert max(len(line) for line in lines) > 80


def test_columns_set_by_the_user_win(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    report_console().print(wide_table())
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 100


def test_every_command_prints_through_the_report_console() -> None:
    """A command that built its own ``Console()`` would wrap its tables again when piped."""
    offenders = [
        path.name
        for path in CLI.glob("*.py")
        if path.name != "output.py" and "Console(" in path.read_text()
    ]
    assert offenders == []
