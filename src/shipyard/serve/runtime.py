"""A server's moving parts: loaded models per alias, routers, the alias watcher, counters.

The runtime is what the HTTP layer calls; it knows nothing of HTTP. Models come from a
``ModelSource`` (the registry in production), which says which version an alias points to and
loads verified bundles. The watcher polls the source and swaps models whose alias moved — the
way a registry promotion or rollback reaches every replica without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from shipyard.core.errors import NotFound, Unavailable
from shipyard.serve.host import ModelSlot, Scored, ServedModel
from shipyard.serve.store_health import StoreHealth
from shipyard.serve.traffic import CanaryPolicy, DeploySpec, Route, Router, ServedModelSpec

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shipyard.registry.bundle import Bundle
    from shipyard.registry.input_contract import ModelInput
    from shipyard.registry.onnx_cache import OnnxCache
    from shipyard.serve.canary_sync import SharedCanaries, Verdict

log = logging.getLogger("shipyard.serve")


class ModelSource(Protocol):
    """Where a server finds its models (the registry, or anything with the same answers)."""

    def resolve(self, model: str, alias: str) -> int:
        """Return the version ``model@alias`` points to now."""

    def load(self, model: str, version: int) -> Bundle:
        """Return the verified bundle of ``model`` version ``version``."""

    def promote(self, model: str, alias: str, version: int, *, reason: str) -> None:
        """Point ``alias`` at ``version`` (a canary that passed)."""

    def record_rollback(self, model: str, alias: str, version: int, *, reason: str) -> None:
        """Record that the canary ``version`` rolled back to ``alias`` (audit only)."""


@dataclass(frozen=True)
class Answer:
    """One scored request: who answered and with what."""

    model: ServedModel
    alias: str
    scored: Scored
    shadow: asyncio.Task[tuple[ServedModel, str, Scored | None]] | None


class Runtime:
    """Loaded models and routing for every served name of a deploy spec."""

    def __init__(
        self,
        spec: DeploySpec,
        source: ModelSource,
        *,
        max_batch_rows: int = 256,
        metering: bool = True,
        onnx_cache: OnnxCache | None = None,
        health: StoreHealth | None = None,
        canaries: SharedCanaries | None = None,
    ) -> None:
        """Hold ``spec``'s routers; models load in :meth:`start`.

        Args:
            spec: The deploy section: served names, policies, poll interval.
            source: Where versions are resolved and loaded from (the registry in a server).
            max_batch_rows: Most rows one micro-batch may hold.
            metering: Count model CPU per request (the workspace's ``cost.metering``).
            onnx_cache: Where verified ONNX exports are kept between starts.
            health: Told whether the alias watcher reached the store (degraded mode).
            canaries: Canary counts and verdicts shared with the other replicas; None
                judges each canary on this server's traffic alone.
        """
        self.spec = spec
        self.source = source
        self.max_batch_rows = max_batch_rows
        self.metering = metering
        self.onnx_cache = onnx_cache
        self.health = health or StoreHealth()
        self.canaries = canaries
        self.slots: dict[tuple[str, str], ModelSlot] = {}
        self.routers = {name: Router(name, served) for name, served in spec.models.items()}
        self.ready = False
        self.swaps = 0
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load and warm every alias of every served name, then watch for alias moves.

        ``ready`` turns true only after the warm-up: a balancer's readiness check then never
        sends traffic to a replica still paying its engines' first-call set-up.
        """
        for name, served in self.spec.models.items():
            for alias in served.aliases():
                model = await asyncio.to_thread(self._load, name, served.model, alias)
                if not await asyncio.to_thread(model.warm):
                    log.info("%s@%s: the warm-up row did not fit its contract", name, alias)
                self.slots[(name, alias)] = ModelSlot(model)
        self.ready = True
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        """Stop watching and release the batchers (after in-flight requests were answered)."""
        self.ready = False
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await asyncio.gather(*(slot.close() for slot in self.slots.values()))

    def _load(self, name: str, registered: str, alias: str) -> ServedModel:
        version = self.source.resolve(registered, alias)
        bundle = self.source.load(registered, version)
        return ServedModel.build(
            name,
            version,
            bundle,
            unseen=self.spec.unseen_categories,
            fast_path=self.spec.fast_path,
            max_batch_rows=self.max_batch_rows,
            metering=self.metering,
            onnx_cache=self.onnx_cache,
        )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.spec.poll_interval_s)
            try:
                await self.refresh()
            except Unavailable as e:  # degraded mode: keep serving what is loaded
                self.health.failed(e)
            except Exception:  # a registry hiccup must not stop serving the loaded models
                log.exception("checking the registry for alias moves failed; will retry")
            else:
                self.health.ok()

    async def refresh(self) -> int:
        """Swap in the new version of every alias that moved; return how many were swapped."""
        swapped = 0
        for (name, alias), slot in list(self.slots.items()):
            registered = self.spec.models[name].model
            version = await asyncio.to_thread(self.source.resolve, registered, alias)
            if version == slot.model.version:
                continue
            fresh = await asyncio.to_thread(self._load, name, registered, alias)
            await asyncio.to_thread(fresh.warm)
            old = slot.swap(fresh)
            swapped += 1
            log.info("swapped %s@%s: version %s -> %s", name, alias, old.version, fresh.version)
        for slot in self.slots.values():
            await slot.reap()
        self.swaps += swapped
        if self.canaries is not None:
            await asyncio.to_thread(self._sync_canaries, self.canaries)
        return swapped

    def _sync_canaries(self, canaries: SharedCanaries) -> None:
        """Share canary counts with the other replicas and apply a verdict any of them reached."""
        for router in list(self.routers.values()):
            policy = router.spec.policy
            if not isinstance(policy, CanaryPolicy):
                continue
            challenger = self.slots[(router.name, policy.challenger)].model
            settled = canaries.sync(router, challenger.version)
            if settled is None or not router.settle(settled.verdict, settled.reason):
                continue
            log.warning("canary of %s %s: %s", router.name, settled.verdict, settled.reason)
            if settled.ours:
                self._act(router, settled.verdict, challenger.version, settled.reason)

    def _act(self, router: Router, verdict: str, version: int, reason: str) -> None:
        """Promote the canary or audit its rollback (once per deployment: the verdict's writer)."""
        try:
            if verdict == "promoted":
                self.source.promote(
                    router.spec.model, router.spec.champion, version, reason=f"canary: {reason}"
                )
            else:
                self.source.record_rollback(
                    router.spec.model, router.spec.champion, version, reason=f"canary: {reason}"
                )
        except Exception:
            log.exception("acting on the canary verdict of %s failed", router.name)

    def served(self, name: str) -> ServedModel:
        """The champion currently answering for ``name``.

        Raises:
            NotFound: The server does not serve ``name``.
        """
        router = self.routers.get(name)
        if router is None:
            raise NotFound(f"no model named {name!r} is served here; see GET /v2/models")
        return self.slots[(name, router.spec.champion)].model

    async def answer(self, name: str, frame: ModelInput, headers: Mapping[str, str]) -> Answer:
        """Route, score, feed the canary judge, and start the shadow copy."""
        router = self.routers.get(name)
        if router is None:
            raise NotFound(f"no model named {name!r} is served here; see GET /v2/models")
        route: Route = router.route(headers)
        model = self.slots[(name, route.answer)].model
        started = time.perf_counter()
        try:
            scored = await model.score(frame)
        except Exception:
            self._judge(router, route.answer, error=True, started=started, scored=None)
            raise
        self._judge(router, route.answer, error=False, started=started, scored=scored)
        shadow = None
        if route.shadow is not None:
            shadow = asyncio.get_running_loop().create_task(self._shadow(name, route.shadow, frame))
        return Answer(model, route.answer, scored, shadow)

    async def _shadow(
        self, name: str, alias: str, frame: ModelInput
    ) -> tuple[ServedModel, str, Scored | None]:
        model = self.slots[(name, alias)].model
        try:
            return model, alias, await model.score(frame)
        except Exception:  # the shadow never affects the answer; its failure is only logged
            log.exception("shadow model %s@%s failed", name, alias)
            return model, alias, None

    def _judge(
        self, router: Router, alias: str, *, error: bool, started: float, scored: Scored | None
    ) -> None:
        score = None
        if scored is not None and scored.labels:
            first = scored.probabilities[0][-1] if scored.probabilities else scored.labels[0]
            score = float(first) if isinstance(first, int | float) else None
        decision = router.observe(
            alias, error=error, latency_ms=(time.perf_counter() - started) * 1000, score=score
        )
        if decision is None:
            return
        policy = router.spec.policy
        canary = self.slots[(router.name, getattr(policy, "challenger", alias))].model
        verdict: Verdict = "promoted" if decision == "promote" else "rolled_back"
        if verdict == "rolled_back":
            log.warning("canary of %s rolled back: %s", router.name, router.canary.reason)
        if self.canaries is not None:
            try:  # the first replica to decide acts; the others only stop routing to it
                if not self.canaries.decide(router, canary.version, verdict, router.canary.reason):
                    return
            except Exception:  # the store is unreachable: act on this replica's own verdict
                log.exception("sharing the canary verdict of %s failed", router.name)
        self._act(router, verdict, canary.version, router.canary.reason)

    def set_policy(self, name: str, spec: ServedModelSpec) -> None:
        """Replace ``name``'s routing (its canary state starts afresh)."""
        self.routers[name] = Router(name, spec)

    def describe(self) -> dict[str, Any]:
        """Every served name with its loaded versions and policy state."""
        return {
            name: {
                "model": router.spec.model,
                "versions": {
                    alias: self.slots[(name, alias)].model.version
                    for alias in router.spec.aliases()
                },
                **router.status(),
            }
            for name, router in self.routers.items()
        }
