"""Hatch build hook: a wheel ships its share of the repository's ``src/breakwater``.

breakwater-sdk (sdks/python) and breakwater-tools (tools/) live outside the source tree they
ship, so their wheels copy the listed files, and the Python files of the listed folders, in
(``shared-sources``: path relative to the project, then path in the wheel; never a
``__pycache__``). An editable install copies nothing: ``dev-mode-dirs`` puts ``src/`` itself on
``sys.path``, so edits under src/ take effect as they do for the server.
See docs/adr/0020-distributions.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class SharedSourcesHook(BuildHookInterface):  # type: ignore[type-arg]
    """Adds ``shared-sources`` to the wheel's forced inclusions, except when editable."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        for source, target in self.config["shared-sources"].items():
            path = (Path(self.root) / source).resolve()
            if path.is_file():
                build_data["force_include"][str(path)] = target
                continue
            if not path.is_dir():
                raise FileNotFoundError(f"shared source {source} is missing at {path}")
            for file in sorted(path.rglob("*.py")):
                if "__pycache__" not in file.parts:
                    inner = file.relative_to(path).as_posix()
                    build_data["force_include"][str(file)] = f"{target}/{inner}"
