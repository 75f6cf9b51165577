"""The model registry users call: register bundles, resolve references, promote through the gate.

A version is a verified bundle stored as a content-addressed blob; loading re-checks the blob's
sha256 against the one recorded at registration, so a bundle edited on disk is refused. Aliases
move only through ``promote`` (gated, or forced with a reason) and ``rollback``; every move and
every refusal is in the alias history with who, when and why.

References: ``name`` (latest version), ``name:3`` (version 3), ``name@production`` (an alias).

The gate applies to every alias (``production``, ``challenger`` or any other name): a candidate
must beat that alias's current holder; the first holder of an alias passes on the contract and
sanity checks alone. Moving an alias without the gate takes ``force`` and a reason.

``promote`` and ``rollback`` are the only ways an alias moves, whoever asks (CLI, pipeline,
retrain, canary): each takes the acting ``Identity``, checks it against the permission table
(``models.promote`` / ``models.rollback``), and writes the alias event and its audit entry in
one transaction. Denied, gate-refused and lost-race promotions are audited too (outcomes
``denied``, ``refused``, ``conflict``). ``register`` does the same with ``models.register``.

The registry takes what it uses (issue 15): the metadata store, the blob store, the audit log,
the bundle limits and a clock; ``ModelRegistry.for_workspace`` is how the entry points (CLI,
pipeline, server) build one, and a test can build one from a bare ``SqlStore`` without a
workspace's background threads.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import (
    ArtifactNotFound,
    Conflict,
    IntegrityFailure,
    InvalidArgument,
    NotFound,
)
from shipyard.registry.archive import read_bounded
from shipyard.registry.names import check_lengths, headline
from shipyard.registry.names import check_name as check_name
from shipyard.registry.reads import RegistryReads, read_under_limits
from shipyard.registry.verdict import PromotionResult, replayed_promotion
from shipyard.security import audit
from shipyard.security.audit_chain import security_store
from shipyard.security.guard import guard
from shipyard.security.permissions import Action
from shipyard.store.registry import AliasEvent, ModelVersion, RegistryStore
from shipyard.store.stores import StoreSet

if TYPE_CHECKING:
    from collections.abc import Callable

    import polars as pl

    from shipyard.core.clock import Clock
    from shipyard.core.review_settings import ReviewSettings
    from shipyard.core.settings import RegistrySettings
    from shipyard.cost.catalog import ActiveInstance
    from shipyard.registry.bundle import Bundle
    from shipyard.security.identities import Identity
    from shipyard.store.artifacts.base import BlobStore
    from shipyard.store.reviews import ReviewRequest
    from shipyard.store.security import AuditWrite, SecurityStore
    from shipyard.store.sql import SqlStore
    from shipyard.track.workspace import Workspace


class ModelRegistry(RegistryReads):
    """Versions, aliases and promotions over a metadata store and a blob store.

    Attributes:
        store: The registry's rows (versions, aliases, alias events).
        security: The audit log every register, promotion and rollback appends to; also who
            may act (users, grants).
        blobs: Where bundles are kept, by content digest.
        limits: Bundle size and shape caps (``registry:`` settings).
        clock: Times of versions, alias moves and audit entries.
    """

    def __init__(
        self,
        store: SqlStore,
        blobs: BlobStore,
        *,
        security: SecurityStore,
        limits: RegistrySettings,
        clock: Clock,
        reviews: ReviewSettings | None = None,
        price: Callable[[], ActiveInstance | None] | None = None,
    ) -> None:
        self.security = security
        self.sql = store  # the reviews' rows live in the same store (``registry.reviews``)
        self._reviews = reviews
        self.price = price  # prices evidence: cost per 1,000 predictions (None: unpriced)
        self.store = RegistryStore(store, audit_log=security)
        self.blobs = blobs
        self.limits = limits
        self.clock = clock
        self._stores = StoreSet(store, blobs, clock)  # reads the gate's test split

    @property
    def reviews(self) -> ReviewSettings:
        """Which aliases need a review (``reviews:`` in ``shipyard.yaml``); none by default.

        Built on first use: its pydantic model is not imported by a command that only lists
        models (issue 17).
        """
        if self._reviews is None:
            from shipyard.core.review_settings import ReviewSettings

            self._reviews = ReviewSettings()
        return self._reviews

    @reviews.setter
    def reviews(self, rules: ReviewSettings) -> None:
        self._reviews = rules

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> ModelRegistry:
        """The registry of a workspace: its stores, clock, ``registry:`` limits and audit chain."""
        from shipyard.registry.review_evidence import workspace_price

        return cls(
            workspace.store,
            workspace.blobs,
            security=security_store(workspace.settings, workspace.store, clock=workspace.clock),
            limits=workspace.settings.registry,
            clock=workspace.clock,
            reviews=workspace.settings.reviews,
            price=partial(workspace_price, workspace.settings),
        )

    # -- versions ---------------------------------------------------------------------------

    def register(
        self,
        name: str,
        bundle: Path | bytes,
        *,
        actor: Identity,
        run_id: str | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> ModelVersion:
        """Validate ``bundle`` (a path or its bytes), store it, and record the next version.

        Nothing is stored unless the bundle reads back clean (safe types, checksums, contract).
        The same ``idempotency_key`` returns the version it registered the first time. The new
        version and its audit entry are one transaction.

        Raises:
            PermissionDenied: ``actor`` may not register models (the denial is audited).
            InvalidArgument: Bad name or over-long text; InvalidData/IntegrityFailure: the bundle
                is refused. Conflict: the key registered another model or bundle before.
        """
        check_name(name)
        check_lengths(description=description, run=run_id, **{"idempotency key": idempotency_key})
        guard(self.security, actor, Action.MODELS_REGISTER, f"model:{name}", clock=self.clock)
        limits = self.limits
        label = str(bundle) if isinstance(bundle, Path) else "(bytes)"
        if isinstance(bundle, Path):  # bounded, and never through a symlink
            data = read_bounded(bundle, label, limits.max_bundle_bytes)
        else:
            data = bytes(bundle)
        loaded = self._read(data, None, label)  # refuses before anything is written
        blob = self.blobs.put_bytes(data)
        m = loaded.manifest
        values = {
            "name": name,
            "bundle_sha256": blob.digest,
            "size_bytes": blob.size_bytes,
            "run_id": run_id or m.lineage.run_id,
            "task": m.task,
            "primary_metric": m.primary_metric,
            "metrics": headline(m.metrics),
            "lineage": m.lineage.model_dump(mode="json"),
            "description": description,
            "created_by": actor.name,
            "created_ms": self.clock.now_ms(),
        }
        entry = audit.draft(
            actor,
            Action.MODELS_REGISTER,
            f"model:{name}",
            detail={"bundle_sha256": blob.digest, "run": values["run_id"]},
            clock=self.clock,
        )
        version, _ = self.store.create_version(values, idempotency_key=idempotency_key, audit=entry)
        return version

    def load(self, ref: str | ModelVersion, *, defer_model: bool = False) -> Bundle:
        """Return the verified bundle of a version (its blob must still match its sha256).

        ``defer_model`` loads the native model on first use (``read_bundle``): a server whose
        verified ONNX export is cached needs none of the libraries it is made of.

        Raises:
            IntegrityFailure: The stored blob was modified after registration.
            ArtifactNotFound: The blob is missing.
        """
        version = ref if isinstance(ref, ModelVersion) else self.get(ref)
        try:
            # The size first: a blob swapped on disk for a huge one is refused unread.
            size = self.blobs.size(version.bundle_sha256)
            if size != version.size_bytes:
                raise IntegrityFailure(
                    f"its blob is {size} bytes, {version.size_bytes} were registered"
                )
            data = self.blobs.get_bytes(version.bundle_sha256)
            return self._read(
                data, version.bundle_sha256, f"of {version.ref}", defer_model=defer_model
            )
        except IntegrityFailure as e:
            raise IntegrityFailure(
                f"model version {version.ref} (bundle {version.bundle_sha256[:12]}) failed its "
                f"integrity check and was not loaded: {e.message}"
            ) from e
        except ArtifactNotFound as e:
            raise ArtifactNotFound(
                f"the bundle of model version {version.ref} ({version.bundle_sha256[:12]}) is "
                "missing from the artifact store; restore it from a backup or register the "
                "model again"
            ) from e

    def _read(
        self, data: bytes, expected_sha256: str | None, label: str, *, defer_model: bool = False
    ) -> Bundle:
        return read_under_limits(data, self.limits, expected_sha256, label, defer_model)

    # -- aliases ----------------------------------------------------------------------------

    def promote(
        self,
        name: str,
        version: int,
        *,
        actor: Identity,
        alias: str = "production",
        margin: float = 0.0,
        force: bool = False,
        reason: str | None = None,
        test_data: pl.DataFrame | None = None,
        idempotency_key: str | None = None,
    ) -> PromotionResult:
        """Ask the gate to move ``alias`` to ``version``; with ``force``, skip it (reason required).

        ``actor`` must hold ``models.promote``. The gate compares the candidate with the current
        holder on the same test rows (the candidate's held-out split unless ``test_data`` is
        given). A refusal is recorded and returned (``moved=False``), not raised. A repeated
        ``idempotency_key`` returns what the first call did (moved or refused) without running
        the gate or moving anything again. The alias event and the audit entry are written in
        one transaction; a denial and a lost race are audited on their own.

        Raises:
            PermissionDenied: ``actor`` may not promote (audited, outcome ``denied``).
            InvalidArgument: ``force`` without a reason, a bad alias name, or the version
                already holds the alias.
            Conflict: The alias moved while the gate ran (audited, outcome ``conflict``), or the
                key was used for another move.

        Under a review rule (``reviews:`` in ``shipyard.yaml``, ``core.review_settings``) the
        alias does not move here: a candidate the gate passes gets a promotion request instead
        (``action`` ``"requested"``, ``request_id`` set; ``shipyard.registry.reviews``), and
        ``force`` is refused (four eyes cannot be skipped). The idempotency key does not apply
        to requests.
        """
        return self._promote(
            name,
            version,
            actor=actor,
            alias=alias,
            margin=margin,
            force=force,
            reason=reason,
            test_data=test_data,
            idempotency_key=idempotency_key,
            review=None,
        )

    def _promote(
        self,
        name: str,
        version: int,
        *,
        actor: Identity,
        alias: str,
        margin: float,
        force: bool,
        reason: str | None,
        test_data: pl.DataFrame | None,
        idempotency_key: str | None,
        review: ReviewRequest | None,
    ) -> PromotionResult:
        """``promote``, or (``review`` given) carrying out an approved request through the gate.

        With ``review`` the alias must still be where the request found it (else ``Conflict``).
        """
        check_name(alias, "alias")
        check_lengths(reason=reason, **{"idempotency key": idempotency_key})
        if force and not (reason and reason.strip()):
            raise InvalidArgument("--force needs a reason (it is recorded in the alias history)")
        target = f"{name}@{alias}"
        asked = {"to": version, "force": force, "reason": reason}
        guard(self.security, actor, Action.MODELS_PROMOTE, target, detail=asked, clock=self.clock)
        rule = None if review is not None else self.reviews.rule_for(name, alias)
        if rule is not None and force:
            raise InvalidArgument(
                f"{target} needs {rule.approvals} approval(s) (reviews: in shipyard.yaml), which "
                "--force cannot skip; `shipyard models request-promotion` asks for them"
            )
        if rule is not None:  # four eyes: a request, not a move (``registry.reviews``)
            from shipyard.registry.reviews import ReviewService

            return ReviewService(self).request_promotion(
                name,
                version,
                actor=actor,
                alias=alias,
                reason=reason,
                margin=margin,
                test_data=test_data,
            )
        if review is not None:
            asked["review"] = review.request_id
        if idempotency_key is not None:
            earlier = self.store.event_by_key(idempotency_key)
            if earlier is not None:
                return replayed_promotion(earlier, idempotency_key, name, alias, version)
        now = self.clock.now_ms()
        candidate_version = self.store.get_version(name, version)
        current = self.store.resolve_alias(name, alias)
        if current == version:
            raise InvalidArgument(
                f"{name}@{alias} already points to version {version}; nothing to promote"
            )
        if review is not None and current != review.from_version:
            raise Conflict(f"{target} moved since request {review.request_id} was made")
        verdict = None
        if not force:
            candidate = self.load(candidate_version)
            champion = None if current is None else self.load(self.store.get_version(name, current))
            frame = test_data if test_data is not None else self._test_frame(candidate)
            from shipyard.registry.gate import run_gate

            verdict = run_gate(candidate, champion, frame, margin=margin)
        gate = None if verdict is None else verdict.to_dict()
        detail = {**asked, "from": current}
        if verdict is not None and not verdict.passed:
            event = self.store.record_refusal(
                name,
                alias,
                candidate=version,
                current=current,
                actor=actor.name,
                reason=reason,
                gate=gate or {},
                at_ms=now,
                idempotency_key=idempotency_key,
                audit=self._entry(actor, Action.MODELS_PROMOTE, target, "refused", detail),
            )
            return PromotionResult(False, name, alias, current, version, "refused", verdict, event)
        action = "force" if force else "promote"
        event = self._move(
            actor,
            Action.MODELS_PROMOTE,
            name,
            alias,
            to_version=version,
            expected_from=current,
            action=action,
            reason=reason,
            gate=gate,
            at_ms=now,
            idempotency_key=idempotency_key,
            detail=detail,
        )
        return PromotionResult(True, name, alias, current, version, action, verdict, event)

    def rollback(
        self,
        name: str,
        alias: str = "production",
        *,
        actor: Identity,
        reason: str | None = None,
    ) -> PromotionResult:
        """Move ``alias`` back to the version it held before the move that brought the current one.

        Rollbacks unwind like a stack (``RegistryStore.previous_holder``): after promoting 1, 2
        and 3, two rollbacks lead to 2 and then 1, never back to 3. No gate runs: a rollback
        returns to a version that held the alias before. ``actor`` must hold
        ``models.rollback``; the move and its audit entry are one transaction.

        Raises:
            PermissionDenied: ``actor`` may not roll back (audited, outcome ``denied``).
            NotFound: The alias has no earlier holder to return to.
            Conflict: The alias moved meanwhile (audited, outcome ``conflict``).
        """
        check_name(alias, "alias")
        check_lengths(reason=reason)
        target = f"{name}@{alias}"
        asked = {"reason": reason}
        guard(self.security, actor, Action.MODELS_ROLLBACK, target, detail=asked, clock=self.clock)
        current = self.store.resolve_alias(name, alias)
        previous = self.store.previous_holder(name, alias)
        if current is None or previous is None:
            raise NotFound(f"{name}@{alias} has no earlier version to roll back to")
        event = self._move(
            actor,
            Action.MODELS_ROLLBACK,
            name,
            alias,
            to_version=previous,
            expected_from=current,
            action="rollback",
            reason=reason,
            gate=None,
            at_ms=self.clock.now_ms(),
            idempotency_key=None,
            detail={**asked, "from": current, "to": previous},
        )
        return PromotionResult(True, name, alias, current, previous, "rollback", None, event)

    def _move(
        self,
        actor: Identity,
        permission: Action,
        name: str,
        alias: str,
        *,
        to_version: int,
        expected_from: int | None,
        action: str,
        reason: str | None,
        gate: dict[str, Any] | None,
        at_ms: int,
        idempotency_key: str | None,
        detail: dict[str, Any],
    ) -> AliasEvent:
        """The one place an alias moves: compare-and-set, event and audit entry together."""
        target = f"{name}@{alias}"
        try:
            return self.store.move_alias(
                name,
                alias,
                to_version=to_version,
                expected_from=expected_from,
                action=action,
                actor=actor.name,
                reason=reason,
                gate=gate,
                at_ms=at_ms,
                idempotency_key=idempotency_key,
                audit=self._entry(actor, permission, target, "ok", {**detail, "action": action}),
            )
        except Conflict as e:
            # The losing side of a race is a decision someone took too: it belongs in the log.
            audit.record(
                self.security,
                actor,
                permission,
                target,
                outcome="conflict",
                detail={**detail, "action": action, "error": e.message},
                clock=self.clock,
            )
            raise

    def _entry(
        self, actor: Identity, action: Action, target: str, outcome: str, detail: dict[str, Any]
    ) -> AuditWrite:
        return audit.draft(actor, action, target, outcome=outcome, detail=detail, clock=self.clock)

    def _test_frame(self, candidate: Bundle) -> pl.DataFrame:
        test_id = candidate.manifest.lineage.dataset_ids.get("test")
        if not test_id:
            raise InvalidArgument(
                "the candidate's bundle names no test dataset; pass test data "
                "(--test-dataset ID in the CLI), or --force with a reason"
            )
        from shipyard.data.datasets import read_dataset

        return read_dataset(self._stores, test_id).collect()
