"""``breakwater bench``: benchmarks that report ratios against a physical limit in the same run."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Benchmarks (results go to stdout as a table and JSON).", no_args_is_help=True
)
