"""Four-eyes promotion: requests with evidence, approvals by someone else, stale detection.

Under a review rule (``reviews:`` in ``shipyard.yaml``) an alias moves only here. A request
(``request_promotion``, or ``ModelRegistry.promote`` of an alias under a rule, which is how an
automated retrain asks) runs the gate first: a refused candidate is refused as ``promote``
refuses it (in the alias history), a passing one gets an open request that carries its evidence
(``registry.review_evidence``). Then:

- only someone other than the requester, holding ``models.approve`` and one of the rule's
  ``approver_roles``, may approve or reject (``PermissionDenied``, HTTP 403, audited);
- a request is *stale* once the alias holder moved or a newer request for the same alias was
  made (the candidate changed): deciding it then closes it as stale and raises ``Conflict``;
- the approval that completes the count moves the alias through ``ModelRegistry`` and the same
  gate, from the holder the request saw; a gate that now refuses closes it as ``refused``.

Every decision (requested, approve, reject, stale, refused) is a row holding the ``seq`` of its
audit entry, whose detail names the request and the SHA-256 of its evidence.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import Conflict, InvalidArgument, PermissionDenied, SelfReview
from shipyard.core.ids import new_id
from shipyard.registry.names import check_lengths, check_name
from shipyard.registry.review_evidence import build_evidence, evidence_sha256
from shipyard.registry.verdict import PromotionResult
from shipyard.security import audit
from shipyard.security.guard import guard
from shipyard.security.permissions import Action
from shipyard.store.reviews import (
    APPROVED,
    OPEN,
    REFUSED,
    REJECTED,
    STALE,
    STATES,
    ReviewDecision,
    ReviewEvidence,
    ReviewRequest,
    ReviewStore,
)

if TYPE_CHECKING:
    import polars as pl

    from shipyard.registry.registry import ModelRegistry
    from shipyard.security.identities import Identity
    from shipyard.store.security import AuditWrite

__all__ = ["ReviewDetail", "ReviewOutcome", "ReviewService"]

MAX_COMMENT = 10_000


@dataclass(frozen=True)
class ReviewOutcome:
    """What a decision did: the request as it is now, the decision, and any alias move."""

    request: ReviewRequest
    decision: ReviewDecision
    promotion: PromotionResult | None = None

    def describe(self) -> str:
        """One line for people."""
        r = self.request
        if self.promotion is not None:
            return f"request {r.request_id} {r.state}: {self.promotion.describe()}"
        return f"request {r.request_id} is {r.state} ({self.decision.decision} by {r.requested_by})"


@dataclass(frozen=True)
class ReviewDetail:
    """A request with its evidence, its decisions and, while open, why it is stale (if so)."""

    request: ReviewRequest
    evidence: ReviewEvidence
    decisions: list[ReviewDecision]
    stale_reason: str | None
    approvals: int


class ReviewService:
    """Promotion requests of one registry (its store, audit chain, clock and review rules)."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.store = ReviewStore(registry.sql, registry.security)

    # -- reading ------------------------------------------------------------------------------

    def get(self, request_id: str) -> ReviewRequest:
        """One request. Raises ``NotFound``."""
        return self.store.get(_check_id(request_id))

    def detail(self, request_id: str) -> ReviewDetail:
        """A request with its evidence and decisions (what a review page shows)."""
        request = self.get(request_id)
        decisions = self.store.decisions(request.request_id)
        return ReviewDetail(
            request,
            self.store.evidence(request.request_id),
            decisions,
            self.stale_reason(request) if request.state == OPEN else None,
            len({d.actor for d in decisions if d.decision == "approve"}),
        )

    def list(
        self,
        *,
        model: str | None = None,
        alias: str | None = None,
        state: str | None = None,
        limit: int = 200,
    ) -> list[ReviewRequest]:
        """Requests, newest first.

        Raises:
            InvalidArgument: ``state`` is not a state, or a name is malformed.
        """
        if state is not None and state not in STATES:
            raise InvalidArgument(f"unknown state {state!r}; states are {', '.join(STATES)}")
        if model is not None:
            check_name(model)
        if alias is not None:
            check_name(alias, "alias")
        if not 1 <= limit <= 10_000:
            raise InvalidArgument("limit must be between 1 and 10,000")
        return self.store.list(model=model, alias=alias, state=state, limit=limit)

    def stale_reason(self, request: ReviewRequest) -> str | None:
        """Why an open request may no longer be decided, or None while it still may."""
        registry = self.registry
        holder = registry.store.resolve_alias(request.name, request.alias)
        if holder not in (request.from_version, request.version):
            return (
                f"{request.target} now points to version {holder}, not to version "
                f"{request.from_version} as when the request was made"
            )
        version = registry.store.get_version(request.name, request.version)
        if version.bundle_sha256 != request.candidate_sha256:
            return f"version {request.version}'s bundle is not the one the request was made for"
        for other in self.store.list(model=request.name, alias=request.alias, state=OPEN):
            if other.request_id != request.request_id and (
                other.created_ms,
                other.request_id,
            ) > (request.created_ms, request.request_id):
                return (
                    f"a newer request ({other.request_id}, version {other.version}) was made "
                    f"for {request.target}: the candidate changed"
                )
        return None

    # -- deciding -----------------------------------------------------------------------------

    def request_promotion(
        self,
        name: str,
        version: int,
        *,
        actor: Identity,
        alias: str = "production",
        reason: str | None = None,
        margin: float = 0.0,
        test_data: pl.DataFrame | None = None,
    ) -> PromotionResult:
        """Ask for ``name@alias`` to move to ``version``: the gate runs, then a request opens.

        Returns ``action == "requested"`` with ``request_id`` when the gate passed; a refused
        candidate is recorded in the alias history and returned as ``promote`` returns it.

        Raises:
            PermissionDenied: ``actor`` may not request promotions (audited).
            InvalidArgument: ``name@alias`` has no review rule (promote it directly), the
                version already holds it, or a bad name.
        """
        registry = self.registry
        check_name(name)
        check_name(alias, "alias")
        check_lengths(reason=reason)
        target = f"{name}@{alias}"
        asked: dict[str, Any] = {"to": version, "reason": reason}
        clock = registry.clock
        guard(
            registry.security,
            actor,
            Action.MODELS_REQUEST_PROMOTION,
            target,
            detail=asked,
            clock=clock,
        )
        rule = registry.reviews.rule_for(name, alias)
        if rule is None:
            raise InvalidArgument(
                f"{target} needs no review (no rule in reviews: of shipyard.yaml); "
                "`shipyard models promote` moves it"
            )
        candidate_version = registry.store.get_version(name, version)
        current = registry.store.resolve_alias(name, alias)
        if current == version:
            raise InvalidArgument(f"{target} already points to version {version}")
        candidate = registry.load(candidate_version)
        holder = (
            None if current is None else registry.load(registry.store.get_version(name, current))
        )
        frame = test_data if test_data is not None else registry._test_frame(candidate)
        from shipyard.registry.gate import run_gate

        verdict = run_gate(candidate, holder, frame, margin=margin)
        now = clock.now_ms()
        detail = {**asked, "from": current}
        if not verdict.passed:
            entry = audit.draft(
                actor,
                Action.MODELS_REQUEST_PROMOTION,
                target,
                outcome="refused",
                detail=detail,
                clock=clock,
            )
            event = registry.store.record_refusal(
                name,
                alias,
                candidate=version,
                current=current,
                actor=actor.name,
                reason=reason,
                gate=verdict.to_dict(),
                at_ms=now,
                audit=entry,
            )
            return PromotionResult(False, name, alias, current, version, "refused", verdict, event)
        evidence = build_evidence(
            verdict=verdict,
            candidate=candidate,
            holder=holder,
            frame=frame,
            stores=registry._stores,
            price=None if registry.price is None else registry.price(),
        )
        digest = evidence_sha256(evidence)
        request_id = new_id()
        values = {
            "request_id": request_id,
            "name": name,
            "alias": alias,
            "version": version,
            "from_version": current,
            "candidate_sha256": candidate_version.bundle_sha256,
            "approvals_needed": rule.approvals,
            "approver_roles": list(rule.approver_roles),
            "margin": margin,
            "requested_by": actor.name,
            "reason": reason,
            "created_ms": now,
            "closed_ms": None,
            "closed_note": None,
        }
        entry = audit.draft(
            actor,
            Action.MODELS_REQUEST_PROMOTION,
            target,
            clock=clock,
            detail={
                **detail,
                "request": request_id,
                "evidence_sha256": digest,
                "approvals_needed": rule.approvals,
            },
        )
        self.store.create(values, evidence, digest, entry)
        return PromotionResult(
            False,
            name,
            alias,
            current,
            version,
            "requested",
            verdict,
            None,
            request_id=request_id,
        )

    def approve(
        self,
        request_id: str,
        *,
        actor: Identity,
        comment: str | None = None,
        test_data: pl.DataFrame | None = None,
    ) -> ReviewOutcome:
        """Approve a request; the approval that completes the count moves the alias (gated).

        Raises:
            PermissionDenied: ``actor`` requested it, lacks ``models.approve`` or the rule's
                roles (each audited).
            Conflict: The request is closed, stale (then closed as stale), already approved by
                ``actor``, or the alias moved while the gate ran.
            NotFound: No such request.
        """
        request = self._decidable(request_id, actor, Action.MODELS_APPROVE, comment)
        evidence = self.store.evidence(request.request_id)
        earlier = self.store.decisions(request.request_id)
        approvers = {d.actor for d in earlier if d.decision == "approve"}
        mine = [d for d in earlier if d.decision == "approve" and d.actor == actor.name]
        now = self.registry.clock.now_ms()
        if mine and len(approvers) < request.approvals_needed:
            raise Conflict(f"{actor.name} already approved request {request.request_id}")
        if mine:  # enough approvals, but the move did not happen (a crash): carry it out now
            decision = mine[0]
        else:
            decision = self.store.decide(
                request.request_id,
                "approve",
                actor.name,
                comment,
                now,
                self._entry(actor, Action.MODELS_APPROVE, request, evidence, "ok"),
            )
            approvers.add(actor.name)
        if len(approvers) < request.approvals_needed:
            return ReviewOutcome(self.store.get(request.request_id), decision)
        if self._carried_out(request):  # a concurrent approval moved it
            return ReviewOutcome(self.store.get(request.request_id), decision)
        try:
            result = self.registry._promote(
                request.name,
                request.version,
                actor=actor,
                alias=request.alias,
                margin=request.margin,
                force=False,
                reason=f"approved request {request.request_id}"
                + (f": {comment}" if comment else ""),
                test_data=test_data,
                idempotency_key=None,
                review=request,
            )
        except Conflict as e:
            if self._carried_out(request):
                return ReviewOutcome(self.store.get(request.request_id), decision)
            self._close(request, actor, evidence, STALE, e.message)
            raise Conflict(
                f"request {request.request_id} is stale and was closed: {e.message}"
            ) from e
        if not result.moved:
            note = result.verdict.summary() if result.verdict is not None else "refused"
            self._close(request, actor, evidence, REFUSED, f"the gate refused: {note}")
        else:
            self._finish(request, now, f"version {result.from_version} -> {result.to_version}")
        return ReviewOutcome(self.store.get(request.request_id), decision, result)

    def reject(self, request_id: str, *, actor: Identity, comment: str) -> ReviewOutcome:
        """Reject a request with a comment saying why; the alias stays.

        Raises:
            InvalidArgument: No comment. PermissionDenied / Conflict / NotFound: as ``approve``.
        """
        if not isinstance(comment, str) or not comment.strip():
            raise InvalidArgument("a rejection needs a comment saying why (--comment)")
        request = self._decidable(request_id, actor, Action.MODELS_REJECT, comment)
        evidence = self.store.evidence(request.request_id)
        decision = self.store.decide(
            request.request_id,
            "reject",
            actor.name,
            comment,
            self.registry.clock.now_ms(),
            self._entry(actor, Action.MODELS_REJECT, request, evidence, "ok"),
            close_as=REJECTED,
            note=f"rejected by {actor.name}",
        )
        return ReviewOutcome(self.store.get(request.request_id), decision)

    # -- pieces -------------------------------------------------------------------------------

    def _carried_out(self, request: ReviewRequest) -> bool:
        """Whether the alias already holds the candidate: the request was carried out; close it.

        Two approvers completing the count at once both try to move the alias; the one whose
        compare-and-set lost finds the move made and closes the request as approved.
        """
        holder = self.registry.store.resolve_alias(request.name, request.alias)
        if holder != request.version:
            return False
        self._finish(request, self.registry.clock.now_ms(), f"version {holder} holds it")
        return True

    def _finish(self, request: ReviewRequest, at_ms: int, note: str) -> None:
        with contextlib.suppress(Conflict):  # closed by the concurrent approval that moved it
            self.store.close(request.request_id, APPROVED, at_ms, f"{request.target}: {note}")

    def _decidable(
        self, request_id: str, actor: Identity, action: Action, comment: str | None
    ) -> ReviewRequest:
        """The open, fresh request ``actor`` may decide; refusals audited, stale ones closed."""
        if comment is not None and len(comment) > MAX_COMMENT:
            raise InvalidArgument(
                f"the comment is {len(comment)} characters; at most {MAX_COMMENT}"
            )
        request = self.get(request_id)
        registry = self.registry
        detail = {"request": request.request_id}
        guard(registry.security, actor, action, request.target, detail=detail, clock=registry.clock)
        if request.state != OPEN:
            raise Conflict(
                f"promotion request {request.request_id} is {request.state}: nothing more can "
                "be decided; make a new one with `shipyard models request-promotion`"
            )
        problem, error = None, PermissionDenied
        if actor.name == request.requested_by:
            error = SelfReview
            problem = (
                f"{actor.name} made request {request.request_id}: another person must decide "
                "it (four eyes)"
            )
        elif actor.role is None or actor.role.value not in request.approver_roles:
            problem = (
                f"{actor.name} is {actor.role or 'without a role'}; request "
                f"{request.request_id} needs one of {', '.join(request.approver_roles)}"
            )
        if problem is not None:
            audit.record(
                registry.security,
                actor,
                action,
                request.target,
                outcome="denied",
                detail={**detail, "error": problem},
                clock=registry.clock,
            )
            raise error(f"permission denied: {problem}")
        stale = self.stale_reason(request)
        if stale is not None:
            self._close(request, actor, self.store.evidence(request.request_id), STALE, stale)
            raise Conflict(
                f"promotion request {request.request_id} is stale and was closed: {stale}; "
                "make a new request"
            )
        return request

    def _close(
        self,
        request: ReviewRequest,
        actor: Identity,
        evidence: ReviewEvidence,
        state: str,
        note: str,
    ) -> None:
        action = Action.MODELS_APPROVE
        self.store.decide(
            request.request_id,
            state,
            actor.name,
            note,
            self.registry.clock.now_ms(),
            self._entry(actor, action, request, evidence, state, note=note),
            close_as=state,
            note=note[:2000],
        )

    def _entry(
        self,
        actor: Identity,
        action: Action,
        request: ReviewRequest,
        evidence: ReviewEvidence,
        outcome: str,
        *,
        note: str | None = None,
    ) -> AuditWrite:
        detail: dict[str, Any] = {
            "request": request.request_id,
            "to": request.version,
            "from": request.from_version,
            "evidence_sha256": evidence.sha256,
        }
        if note is not None:
            detail["note"] = note[:500]
        return audit.draft(
            actor, action, request.target, outcome=outcome, detail=detail, clock=self.registry.clock
        )


def _check_id(request_id: str) -> str:
    if not isinstance(request_id, str) or not request_id.isalnum() or len(request_id) > 32:
        raise InvalidArgument(f"{request_id!r} is not a promotion request id")
    return request_id
