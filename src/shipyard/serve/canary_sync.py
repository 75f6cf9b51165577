"""A server's side of the shared canary (issue 20): push counts, read totals, decide once.

``store.canaries`` holds one row per canary for the whole deployment. The alias watcher calls
:meth:`SharedCanaries.sync` every poll: this replica's new challenger requests and errors go
in, the deployment's totals come back and are judged against the policy's error limit; a
verdict found there (reached by any replica) ends the canary here too, so no replica keeps
routing to a canary another one rolled back. A replica that decides on its own window goes
through :meth:`decide`: only the first verdict is written, and only its writer acts on it
(the audit entry, the alias move), so a canary is rolled back or promoted once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

from shipyard.serve.traffic import CanaryPolicy

if TYPE_CHECKING:
    from shipyard.serve.traffic import Router
    from shipyard.store.canaries import CanaryStore

log = logging.getLogger("shipyard.serve")

Verdict = Literal["rolled_back", "promoted"]


@dataclass(frozen=True)
class Settled:
    """A verdict for a canary, and whether this replica wrote it (and so acts on it)."""

    verdict: Verdict
    reason: str
    ours: bool


class SharedCanaries:
    """The deployment-wide canary state, as one server reads and writes it."""

    def __init__(self, store: CanaryStore) -> None:
        self.store = store

    @staticmethod
    def key(router: Router, challenger_version: int) -> str:
        """The canary's row: served name, champion alias, challenger alias and version."""
        policy = cast("CanaryPolicy", router.spec.policy)
        spec = router.spec
        return (
            f"{router.name}:{spec.model}@{spec.champion}>{policy.challenger}:v{challenger_version}"
        )

    def decide(
        self, router: Router, challenger_version: int, verdict: Verdict, reason: str
    ) -> bool:
        """Write this replica's verdict unless another was first; return whether it was ours."""
        _, won = self.store.decide(self.key(router, challenger_version), verdict, reason)
        if not won:
            log.info("canary of %s was already decided by another replica", router.name)
        return won

    def sync(self, router: Router, challenger_version: int) -> Settled | None:
        """Add this replica's counts, judge the totals; return the verdict if there is one.

        Raises:
            Unavailable: The store could not be reached (the counts are kept for next time).
        """
        policy = router.spec.policy
        if not isinstance(policy, CanaryPolicy) or router.canary.status != "running":
            return None
        key = self.key(router, challenger_version)
        requests, errors = router.take_unsynced()
        try:
            shared = self.store.add(key, requests, errors)
        except Exception:
            router.canary.unsynced_requests += requests  # counted again on the next poll
            router.canary.unsynced_errors += errors
            raise
        if shared.verdict is not None:
            return Settled(cast("Verdict", shared.verdict), shared.reason or "", ours=False)
        if shared.requests < policy.min_requests:
            return None
        rate = shared.errors / shared.requests
        if rate <= policy.max_error_rate:
            return None
        reason = (
            f"error rate {rate:.1%} over {policy.max_error_rate:.1%} "
            f"on {shared.requests} requests across replicas"
        )
        settled, won = self.store.decide(key, "rolled_back", reason)
        return Settled(cast("Verdict", settled.verdict), settled.reason or reason, ours=won)
