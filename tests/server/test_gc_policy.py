"""The collector policy: full collections wait while a storm is admitted, within a bound; what
outlives the young generations is frozen, and the heap is walked again once it has doubled."""

from __future__ import annotations

from breakwater.server.gc_policy import NEVER, QUIET_SECONDS, REWALK_GROWTH, CollectorPolicy


class FakeGc:
    """Thresholds, a clock and a heap that tests move by hand.

    ``young`` objects are tracked and not frozen (``young_garbage`` of them are cycles a young
    collection frees); ``frozen_objects`` are in the permanent generation; ``cyclic`` of the
    frozen ones are garbage that only a full walk frees.
    """

    def __init__(self) -> None:
        self.threshold = (700, 10, 10)
        self.now = 0.0
        self.frozen = 0
        self.young = 0
        self.frozen_objects = 0
        self.young_garbage = 0
        self.cyclic = 0
        self.walked = 0

    def _freeze(self) -> None:
        self.frozen += 1
        self.frozen_objects += self.young
        self.young = 0

    def _unfreeze(self) -> None:
        self.young += self.frozen_objects
        self.frozen_objects = 0

    def _collect(self, generation: int) -> int:
        self.young -= self.young_garbage
        self.young_garbage = 0
        if generation == 2:
            self.walked += self.young
            self.young -= self.cyclic
            self.cyclic = 0
        return 0

    def policy(self, max_defer: float = 30.0) -> CollectorPolicy:
        """A policy wired to this fake."""

        def set_threshold(*values: int) -> None:
            self.threshold = (values[0], values[1], values[2])

        return CollectorPolicy(
            max_defer,
            clock=lambda: self.now,
            get_threshold=lambda: self.threshold,
            set_threshold=set_threshold,
            freeze=self._freeze,
            unfreeze=self._unfreeze,
            collect=self._collect,
            heap_blocks=lambda: self.young + self.frozen_objects,
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


def test_what_outlives_the_young_generations_is_frozen_every_tick() -> None:
    """Each tick collects the young generations and freezes their survivors, so CPython's own
    full collections never walk them again; nothing frozen is walked before the bound."""
    gc = FakeGc()
    policy = gc.policy()
    gc.young = 1000
    policy.freeze_startup()
    gc.young, gc.young_garbage = 500, 100
    policy.tick()
    assert (gc.young, gc.frozen_objects) == (0, 1400)
    assert gc.walked == 0 and policy.walks == 0


def test_the_heap_is_walked_once_it_has_doubled() -> None:
    """Cycles among frozen objects are freed by one full walk once the heap has grown by
    ``REWALK_GROWTH`` since the last walk, not before."""
    gc = FakeGc()
    policy = gc.policy()
    gc.young = 1000
    policy.freeze_startup()
    gc.young = int(1000 * (REWALK_GROWTH - 1))  # exactly double: not past the bound yet
    policy.tick()
    assert policy.walks == 0
    gc.young, gc.cyclic = 10, 300
    policy.tick()
    assert policy.walks == 1
    assert gc.walked == 2010
    assert (gc.young, gc.frozen_objects) == (0, 1710)
    gc.young = 10
    policy.tick()
    assert policy.walks == 1  # the bound is now twice 1,710


def test_no_walk_while_a_storm_postpones_full_collections() -> None:
    """A storm holds the walk back as it holds CPython's full collections."""
    gc = FakeGc()
    policy = gc.policy()
    gc.young = 100
    policy.freeze_startup()
    policy.storm()
    gc.young = 1000
    policy.tick()
    assert policy.walks == 0
    gc.now += QUIET_SECONDS
    policy.tick()
    assert policy.walks == 1
