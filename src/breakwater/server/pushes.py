"""A push, whichever way it arrives: ``POST /v1/sync/push`` or a ``push`` message on an open
realtime WebSocket (docs/protocol.md#push, ADR 0052).

Both ways parse, admit, apply and wait for the write concern here, so their semantics,
idempotency, access checks and limits cannot drift apart; only the rendering of the answer
differs (:func:`full_answer` for HTTP, :func:`compact_answer` for the socket).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from breakwater.auth.identity import Identity
from breakwater.core import codec
from breakwater.core import cursor as cursor_mod
from breakwater.core.document import delta_for, empty_state, join
from breakwater.core.engine import MutationResult
from breakwater.core.errors import BreakwaterError, PayloadTooLarge, ValidationError
from breakwater.core.mutation import Mutation, parse_mutation, parse_valid_mutations
from breakwater.server.node import Node
from breakwater.server.wire import result_json

CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:~-]{1,128}$", re.ASCII)
WRITE_CONCERNS = ("local", "replicated")
"""``local``: acknowledged once durable in this region; ``replicated``: once another region
holds it too, or after ``topology.write_concern_timeout`` with 202 (docs/protocol.md)."""


@dataclass
class Pushed:
    """What a push did: each mutation as admitted and its result, in order."""

    mutations: list[Mutation]
    results: list[MutationResult]
    replicated: bool | None
    """With ``write_concern: replicated``: whether another region held every change in time."""
    reads_all: bool
    """Whether the caller reads every change as it is (no read rules): then the answer may
    carry document states, which never show more than a pull would."""


def parse_push(body: Any, node: Node, identity: Identity | None) -> list[Mutation]:
    """Validate a whole push before anything is applied: one bad mutation refuses all of it.

    That includes access: a mutation on a collection the caller may not write refuses the
    push (403). What depends on the document (the write rule, the owner field) is checked by
    each mutation's guard when it is applied, and rejects that mutation only.
    """
    limits = node.config.limits
    if not isinstance(body, dict):
        raise ValidationError("push body must be a JSON object")
    unknown = set(body) - {"client_id", "mutations", "write_concern"}
    if unknown:
        raise ValidationError(f"unknown push fields: {sorted(unknown)}")
    if body.get("write_concern", "local") not in WRITE_CONCERNS:
        raise ValidationError(
            f"write_concern must be one of {list(WRITE_CONCERNS)}", field="write_concern"
        )
    client_id = body.get("client_id")
    if client_id is not None and (
        not isinstance(client_id, str) or not CLIENT_ID_PATTERN.fullmatch(client_id)
    ):
        raise ValidationError(f"client_id must match {CLIENT_ID_PATTERN.pattern}")
    raw = body.get("mutations")
    if not isinstance(raw, list) or not raw:
        raise ValidationError("mutations must be a non-empty list")
    if len(raw) > limits.max_mutations_per_push:
        raise PayloadTooLarge(
            f"{len(raw)} mutations in one push; the limit is {limits.max_mutations_per_push}",
            limit=limits.max_mutations_per_push,
        )
    admit = node.writes.admission(identity)
    # Parsed all at once when every mutation is valid (the common case); else one at a time,
    # which finds the first problem. Either way each is admitted in order, so a refusal is
    # the one that parsing and admitting each mutation in turn meets first.
    parsed = parse_valid_mutations(raw, limits)
    mutations = []
    for index, item in enumerate(raw):
        try:
            mutation = admit(parse_mutation(item, limits) if parsed is None else parsed[index])
        except BreakwaterError as error:
            error.extra["index"] = index
            error.detail = f"mutations[{index}]: {error.detail}"
            raise
        mutations.append(mutation)
    return mutations


def admit(node: Node, identity: Identity | None) -> None:
    """Refuse a caller who may not push at all, or a region that takes no writes, before the
    body is read."""
    node.policy.admit_caller(identity)
    node.region.require_writable()


async def push(node: Node, identity: Identity | None, body: Any) -> Pushed:
    """Validate ``body`` (a push body) of an :func:`admit`-ted caller and apply it once per
    mutation.

    Raises the problem that refuses the whole push (nothing applied); per-mutation refusals
    are ``rejected`` results."""
    mutations = parse_push(body, node, identity)
    results = await node.writes.apply(mutations, "push")
    replicated = None
    if body.get("write_concern") == "replicated":
        timeout = node.config.topology.write_concern_timeout
        replicated = await node.writes.replicated(results, timeout)
    reads_all = node.policy.viewer(identity, None) is None
    return Pushed(mutations, results, replicated, reads_all)


def _stable(node: Node, results: list[MutationResult]) -> dict[str, int]:
    """``stable`` as a pull would give it after these changes (one region: the changes)."""
    done = [(r.origin, r.seq) for r in results if r.origin is not None and r.seq is not None]
    return node.region.stable_for(cursor_mod.advance({}, done))


def full_answer(node: Node, pushed: Pushed, include_state: bool) -> dict[str, Any]:
    """The ``POST /v1/sync/push`` answer; with ``include_state``, ``stable`` and each applied
    document's state (to a caller that reads every change as it is)."""
    answers = [result_json(r) for r in pushed.results]
    if pushed.replicated is not None:
        for answer in answers:
            if answer["status"] != "rejected":
                answer["replicated"] = pushed.replicated
    reply: dict[str, Any] = {"results": answers, "hlc": node.clock.now()}
    if include_state:
        reply["stable"] = _stable(node, pushed.results)
        if pushed.reads_all:
            for result, answer in zip(pushed.results, answers, strict=True):
                if result.status == "applied" and result.doc is not None:
                    answer["state"] = result.doc.state
    return reply


def derivable(mutation: Mutation, result: MutationResult) -> bool:
    """Whether the device that sent ``mutation`` can compute its change's state itself.

    True when the stored state is the state before it joined with the mutation's own delta
    (:func:`~breakwater.core.document.delta_for` of what the device sent, with its stamp): the
    device joins that delta into its server state, as the pull of the change would. Not when
    the node changed what was applied (a stamp it made, an owner field a rule set, document-
    level conflicts, counters folded or erased)."""
    if result.status != "applied" or result.doc is None or mutation.hlc is None:
        return False
    if mutation.op == "increment":
        # Across regions a counter's state is rewritten as its increments become stable
        # (folded, ADR 0019); a device that derived one kept a state the nodes no longer had
        # (the region-loss scenario: same value, another version, for good). Sent whole.
        return False
    delta = delta_for(mutation.op, mutation.data, mutation.hlc, mutation.mutation_id)
    prior = result.prior if result.prior is not None else empty_state()
    return join(prior, delta) == result.doc.state


def compact_answer(node: Node, request_id: int, pushed: Pushed) -> str:
    """The ``pushed`` message: what the device needs to settle, in the mutations' order.

    The origin is said once; a result's status only when not ``applied``; an applied result
    carries ``seq``, ``version`` and ``hlc``, and ``state`` only when the device cannot derive
    it from its own mutation (``derive`` says that it may: a caller under read rules gets no
    states and pulls)."""
    origin = next((r.origin for r in pushed.results if r.origin is not None), None)
    answers: list[dict[str, Any]] = []
    for mutation, result in zip(pushed.mutations, pushed.results, strict=True):
        answer = result_json(result)
        del answer["mutation_id"]  # the results are in the mutations' order
        if answer["status"] == "applied":
            del answer["status"]
        if "origin" in answer and answer["origin"] == origin:
            del answer["origin"]
        if result.status != "rejected":
            if pushed.reads_all and result.doc is not None and not derivable(mutation, result):
                answer["state"] = result.doc.state
            if pushed.replicated is not None:
                answer["replicated"] = pushed.replicated
        answers.append(answer)
    reply: dict[str, Any] = {"type": "pushed", "id": request_id, "origin": origin}
    reply["results"] = answers
    reply["hlc"] = node.clock.now()
    reply["stable"] = _stable(node, pushed.results)
    if pushed.reads_all:
        reply["derive"] = True
    return codec.dumps(reply).decode()


def refused_answer(request_id: int, error: BreakwaterError) -> str:
    """The ``pushed`` message of a push refused as a whole (nothing applied)."""
    return codec.dumps({"type": "pushed", "id": request_id, "error": error.to_problem()}).decode()
