"""Documents, HLC, merge rules, mutations, cursors and the sync engine (no I/O here)."""

from breakwater.core.collections import CollectionConfig
from breakwater.core.engine import Change, Engine, MutationResult, StoredDoc
from breakwater.core.hlc import HybridClock
from breakwater.core.limits import Limits
from breakwater.core.mutation import Mutation, parse_mutation

__all__ = [
    "Change",
    "CollectionConfig",
    "Engine",
    "HybridClock",
    "Limits",
    "Mutation",
    "MutationResult",
    "StoredDoc",
    "parse_mutation",
]
