"""Entry point: builds the Typer app and maps errors to one ``Error:`` line and an exit code."""

from __future__ import annotations

import sys

import typer

from breakwater.cli import bench, chaos, keys, loadtest, restore, serve, users, verify
from breakwater.config import ConfigError
from breakwater.core.errors import BreakwaterError

app = typer.Typer(
    name="breakwater",
    help="Breakwater: an offline-first backend for mobile apps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.command("verify")(verify.verify)
app.command("loadtest")(loadtest.loadtest)
app.command("restore")(restore.restore)
app.add_typer(bench.app, name="bench")
app.add_typer(keys.app, name="keys")
app.add_typer(users.app, name="users")
app.add_typer(chaos.app, name="chaos")


def main() -> None:
    """Run the CLI; configuration and runtime errors end with exit code 2 or 1 and a hint."""
    try:
        app()
    except ConfigError as error:
        print(f"Error: {error}", file=sys.stderr)
        print(
            "Try: breakwater serve --help, or check the config file and BREAKWATER_* variables",
            file=sys.stderr,
        )
        sys.exit(2)
    except BreakwaterError as error:
        print(f"Error: {error.detail}", file=sys.stderr)
        sys.exit(1)
