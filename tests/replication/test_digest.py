"""Anti-entropy digests and verdicts: digests do not depend on read order, differ exactly in
the buckets whose documents differ, and a verdict never brings back a document whose delete was
purged nor repairs from a change this region has not received yet."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from breakwater.core import hlc
from breakwater.replication import digest
from breakwater.replication.digest import Sides
from breakwater.storage.base import DocSummary

NOW_MS = 1_800_000_000_000
CUTOFF_MS = NOW_MS - 86_400_000


def doc(
    doc_id: str, version: str = "v1", seq: int = 5, *, age_ms: int = 0, deleted: bool = False
) -> DocSummary:
    stamp = hlc.encode(NOW_MS - age_ms, 0, "n")
    return DocSummary("todos", doc_id, version, "a~1", seq, stamp, deleted)


summaries = st.lists(
    st.builds(
        doc,
        st.text("abcdefgh", min_size=1, max_size=4),
        st.sampled_from(["v1", "v2", "v3"]),
    ),
    unique_by=lambda summary: summary.doc_id,
    max_size=30,
)


@given(summaries, st.randoms(use_true_random=False))
def test_a_digest_does_not_depend_on_read_order(docs: list[DocSummary], rng: object) -> None:
    shuffled = list(docs)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert digest.digests(docs, 8) == digest.digests(shuffled, 8)


@given(summaries, st.data())
def test_differing_buckets_are_exactly_those_of_changed_documents(
    docs: list[DocSummary], data: st.DataObject
) -> None:
    changed = data.draw(
        st.sets(st.sampled_from([d.doc_id for d in docs])) if docs else st.just(set())
    )
    other = [doc(d.doc_id, d.version + "x") if d.doc_id in changed else d for d in docs]
    found = digest.differing(digest.digests(docs, 16), digest.digests(other, 16))
    assert found == sorted({("todos", digest.bucket_of(i, 16)) for i in changed})


def test_tombstones_stay_out_of_digests() -> None:
    live = [doc("x"), doc("y")]
    assert digest.digests(live, 4) == digest.digests([*live, doc("z", deleted=True)], 4)


def verdict(local: DocSummary | None, remote: DocSummary | None, lh: int = 10, rh: int = 10) -> str:
    return digest.verdict(Sides(local, remote, {"a~1": lh}, {"a~1": rh}), CUTOFF_MS)


def test_verdicts() -> None:
    old = 2 * 86_400_000
    # both hold it: join only once the peer's change is held here
    assert verdict(doc("d", "v1"), doc("d", "v2", seq=7)) == "join"
    assert verdict(doc("d", "v1"), doc("d", "v2", seq=11)) == "skip"
    assert verdict(doc("d", "v1"), doc("d", "v1")) == "skip"
    # only the peer holds it
    assert verdict(None, doc("d")) == "import"  # lost here, recent
    assert verdict(None, doc("d", age_ms=old)) == "purged_here"  # never brought back
    assert verdict(None, doc("d", seq=11)) == "skip"  # in flight
    assert verdict(None, doc("d", deleted=True)) == "skip"
    # only this region holds it
    assert verdict(doc("d", age_ms=old), None) == "delete_here"  # the peer purged its delete
    assert verdict(doc("d"), None) == "skip"  # recent: the peer imports it
    assert verdict(doc("d", age_ms=old), None, rh=4) == "skip"  # the peer has not pulled it
    assert verdict(doc("d", age_ms=old, deleted=True), None) == "skip"
