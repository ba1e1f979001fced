"""Per-collection settings: document validation, conflict policy and query indexes.

The validator is injected (the config layer compiles the JSON Schema), so ``core`` keeps to the
standard library and the JSON codec.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

ConflictPolicy = Literal["field", "document"]
INDEX_FIELD_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", re.ASCII)

#: Raises :class:`~breakwater.core.errors.SchemaViolation` for a document it refuses.
Validator = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class CollectionConfig:
    """How one collection validates and merges documents."""

    name: str
    conflict: ConflictPolicy = "field"
    indexes: tuple[str, ...] = ()
    validator: Validator | None = None

    def __post_init__(self) -> None:
        if self.conflict not in ("field", "document"):
            raise ValueError(
                f"collections.{self.name}.conflict must be 'field' or 'document', "
                f"not {self.conflict!r}"
            )
        for name in self.indexes:
            if not INDEX_FIELD_PATTERN.fullmatch(name):
                raise ValueError(f"collections.{self.name}.indexes: {name!r} is not a field name")

    def validate(self, document: dict[str, Any]) -> None:
        """Raise ``SchemaViolation`` when the collection's validator refuses ``document``."""
        if self.validator is not None:
            self.validator(document)
