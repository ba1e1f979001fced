"""``@record``: an immutable-by-contract dataclass that is cheap to construct.

A frozen dataclass sets each field through ``object.__setattr__`` in ``__init__``; for the five
to seven records built per pushed document (mutation, change, stored document, result, feed
entry) that was a tenth of a node's CPU per document (py-spy, ``breakwater bench push``). A
``@record`` is a plain slotted dataclass at run time, about four times faster to build, and
frozen for the type checker (``dataclass_transform(frozen_default=True)``): mypy refuses any
assignment to a field, so the contract stays checked where the code is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[T]) -> type[T]:
    """Make ``cls`` a slotted dataclass that the type checker treats as frozen."""
    return dataclass(slots=True)(cls)
