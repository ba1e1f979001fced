"""The committed golden vectors (sdks/vectors) are what the core computes now."""

from __future__ import annotations

import pytest

from tests.golden_vectors import BUILDERS, VECTORS_DIR, render


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_committed_vectors_match_the_core(name: str) -> None:
    """A core change that alters a vector fails here until the files are regenerated
    (``python -m tests.golden_vectors``) and every SDK passes them again."""
    committed = (VECTORS_DIR / f"{name}.json").read_text(encoding="utf-8")
    assert committed == render(BUILDERS[name]), f"sdks/vectors/{name}.json is stale"
