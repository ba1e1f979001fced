"""Entry point: builds the Typer app and maps errors to one ``Error:`` line and an exit code."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

import breakwater
from breakwater.cli import (
    backup,
    bench,
    chaos,
    cluster,
    drill,
    gateway,
    init,
    keys,
    loadtest,
    long_run,
    region,
    restore,
    serve,
    users,
    verify,
    webhooks,
)
from breakwater.config import ConfigError
from breakwater.core.errors import BreakwaterError

app = typer.Typer(
    name="breakwater",
    help="Breakwater: an offline-first backend for mobile apps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Shipped by breakwater-tools (docs/adr/0020-distributions.md); a server install may lack them.
TOOLS_PACKAGES = ("breakwater.bench", "breakwater.chaos")
TOOLS_INSTALL = "pip install 'breakwater-server[tools]'"


def _print_version(value: bool) -> None:
    if value:
        print(f"breakwater {breakwater.__version__}")
        raise typer.Exit


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Breakwater: an offline-first backend for mobile apps."""


app.command("init")(init.init)
app.command("serve")(serve.serve)
app.command("verify")(verify.verify)
app.command("loadtest")(loadtest.loadtest)
app.command("restore")(restore.restore)
app.command("backup")(backup.backup)
app.command("archive")(backup.archive)
app.add_typer(bench.app, name="bench")
app.add_typer(keys.app, name="keys")
app.add_typer(users.app, name="users")
app.add_typer(chaos.app, name="chaos")
app.add_typer(cluster.app, name="cluster")
app.add_typer(drill.app, name="drill")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(gateway.app, name="gateway")
app.add_typer(region.app, name="region")


def main() -> None:
    """Run the CLI; configuration and runtime errors end with exit code 2 or 1 and a hint."""
    try:
        app()
    except SystemExit:
        signalled = long_run.exit_code()
        if signalled is not None:
            print("Stopped by a signal; what the command had started is stopped.", file=sys.stderr)
            sys.exit(signalled)
        raise
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
    except ModuleNotFoundError as error:
        if error.name not in TOOLS_PACKAGES:
            raise
        print(
            f"Error: this command needs the benchmarks and verification toolkit ({error.name}),"
            " which this installation does not include",
            file=sys.stderr,
        )
        print(f"Try: {TOOLS_INSTALL}", file=sys.stderr)
        sys.exit(2)
