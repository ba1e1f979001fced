"""The dependency direction of ARCHITECTURE.md §2, checked on the import graph."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "breakwater"

# What each module may import from breakwater (itself always allowed). Modules that are not
# listed (cli, bench, config) sit on top and may import anything.
ALLOWED = {
    "core": set(),
    "storage": {"core"},
    "bus": {"core", "resilience"},  # the reconnect backoff (ADR 0005)
    "cache": {"core"},
    "resilience": set(),
    "obs": set(),
    "auth": {"core"},
    "replication": {"core", "storage", "resilience"},
    "client": {"core", "resilience"},
    "gateway": {"resilience", "obs"},
    "ops": {"storage", "core"},
    "chaos": {"client", "resilience", "core"},
    "files": {"core"},
    "server": {
        "core",
        "storage",
        "bus",
        "cache",
        "auth",
        "obs",
        "config",
        "resilience",
        "replication",
        "files",
    },
}


def imported_modules(path: Path) -> set[str]:
    """Top-level breakwater subpackages that ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "breakwater" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_module_imports_only_what_the_map_allows(module: str) -> None:
    """A module of the map imports only the modules below it."""
    root = PACKAGE / module
    files = list(root.rglob("*.py")) if root.is_dir() else []
    for path in files:
        extra = imported_modules(path) - ALLOWED[module] - {module}
        assert not extra, f"{path.relative_to(PACKAGE)} imports {sorted(extra)}"


def test_core_uses_no_third_party_library_but_the_json_codec() -> None:
    """core depends on the standard library and orjson only."""
    import sys

    allowed = set(sys.stdlib_module_names) | {"orjson", "breakwater"}
    for path in (PACKAGE / "core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"


# Inside the server: the application layer sits below the routes and realtime, which call it
# (ARCHITECTURE.md §2); of the server it may use only the read cache it keeps fresh.
APPLICATION_MAY_IMPORT = {"breakwater.server.read_cache", "breakwater.server.application"}


def test_the_application_layer_imports_no_route_and_no_consumer() -> None:
    """server/application imports no route module and none of its consumers (realtime)."""
    for path in (PACKAGE / "server" / "application").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                name = node.module
                if name.startswith("breakwater.server"):
                    assert any(name.startswith(allowed) for allowed in APPLICATION_MAY_IMPORT), (
                        f"{path.relative_to(PACKAGE)} imports {name}"
                    )
