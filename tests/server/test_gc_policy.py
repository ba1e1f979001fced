"""The collector policy: full collections wait while a storm is admitted, within a bound."""

from __future__ import annotations

from breakwater.server.gc_policy import NEVER, QUIET_SECONDS, CollectorPolicy


class FakeGc:
    """Thresholds and a clock that tests move by hand."""

    def __init__(self) -> None:
        self.threshold = (700, 10, 10)
        self.now = 0.0
        self.frozen = 0

    def policy(self, max_defer: float = 30.0) -> CollectorPolicy:
        """A policy wired to this fake."""

        def set_threshold(*values: int) -> None:
            self.threshold = (values[0], values[1], values[2])

        def freeze() -> None:
            self.frozen += 1

        return CollectorPolicy(
            max_defer,
            clock=lambda: self.now,
            get_threshold=lambda: self.threshold,
            set_threshold=set_threshold,
            freeze=freeze,
        )


def test_a_storm_postpones_full_collections_until_admissions_are_quiet() -> None:
    """During a storm the full-collection threshold is out of reach; quiet restores it."""
    gc = FakeGc()
    policy = gc.policy()
    policy.storm()
    assert gc.threshold == (700, 10, NEVER) and policy.deferring
    gc.now += QUIET_SECONDS / 2
    policy.storm()
    policy.tick()
    assert policy.deferring
    gc.now += QUIET_SECONDS
    policy.tick()
    assert gc.threshold == (700, 10, 10) and not policy.deferring


def test_a_deferral_never_lasts_longer_than_the_bound() -> None:
    """An endless storm still gets its full collection after ``max_defer`` seconds."""
    gc = FakeGc()
    policy = gc.policy(max_defer=10)
    for _ in range(11):
        policy.storm()
        policy.tick()
        gc.now += 1
    assert gc.threshold == (700, 10, 10)
    assert policy.deferrals == 1


def test_startup_objects_are_frozen() -> None:
    """``freeze_startup`` moves what exists to the permanent generation (once)."""
    gc = FakeGc()
    gc.policy().freeze_startup()
    assert gc.frozen == 1
