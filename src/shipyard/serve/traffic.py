"""Traffic policies: which model version answers a request, and which one watches.

Per served name there is a champion (an alias, normally ``production``) and optionally a
challenger (``challenger``). A/B splits by weight, sticky by a request key so one user always
sees one variant; canary sends a share to the challenger and judges it on errors, latency and
score shift, rolling back by itself or promoting after a stated volume; shadow copies every
request to the challenger while only the champion answers.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from collections.abc import Mapping

_STRICT = ConfigDict(extra="forbid", frozen=True)


class ABPolicy(BaseModel):
    """Split by weight between aliases; sticky by a header."""

    model_config = _STRICT
    type: Literal["ab"] = "ab"
    weights: dict[str, float]
    sticky_header: str = "x-request-key"

    @model_validator(mode="after")
    def _positive(self) -> ABPolicy:
        if (
            not self.weights
            or any(w < 0 for w in self.weights.values())
            or sum(self.weights.values()) <= 0
        ):
            raise ValueError(
                "weights must be non-negative and not all zero, "
                "e.g. {production: 0.9, challenger: 0.1}"
            )
        return self


class CanaryPolicy(BaseModel):
    """A share of traffic to the challenger, judged as it goes."""

    model_config = _STRICT
    type: Literal["canary"] = "canary"
    challenger: str = "challenger"
    percent: float = Field(10.0, ge=0.0, le=100.0)
    max_error_rate: float = Field(0.05, ge=0.0, le=1.0)
    max_p99_ms: float | None = Field(None, gt=0)
    max_score_shift: float | None = Field(None, gt=0)
    min_requests: int = Field(20, ge=1)
    window: int = Field(200, ge=10)
    promote_after: int | None = Field(None, ge=1)
    sticky_header: str = "x-request-key"


class ShadowPolicy(BaseModel):
    """The challenger sees a copy of every request; only the champion answers."""

    model_config = _STRICT
    type: Literal["shadow"] = "shadow"
    challenger: str = "challenger"


Policy = Annotated[ABPolicy | CanaryPolicy | ShadowPolicy, Field(discriminator="type")]


#: A champion written ``:N`` pins version N instead of following an alias.
PINNED = ":"


class ServedModelSpec(BaseModel):
    """One served name: the registered model, its champion and an optional policy.

    The champion is an alias (``production``), followed as it moves, or a pinned version
    (``:3``, from ``shipyard serve churn:3``), which never changes and so takes no policy: a
    canary or A/B split needs an alias to move.
    """

    model_config = _STRICT
    model: str
    champion: str = "production"
    policy: Policy | None = None

    @model_validator(mode="after")
    def _pinned_takes_no_policy(self) -> ServedModelSpec:
        if self.champion.startswith(PINNED):
            if not self.champion[1:].isdigit():
                raise ValueError(f"a pinned champion is :<version>, got {self.champion!r}")
            if self.policy is not None:
                raise ValueError(
                    f"{self.model}{self.champion} is a pinned version; a traffic policy needs "
                    "the champion to be an alias (e.g. production)"
                )
        return self

    def aliases(self) -> list[str]:
        """Every alias this name needs loaded (champion first)."""
        names = [self.champion]
        if isinstance(self.policy, ABPolicy):
            names += [a for a in self.policy.weights if a != self.champion]
        elif self.policy is not None and self.policy.challenger != self.champion:
            names.append(self.policy.challenger)
        return names


class DeploySpec(BaseModel):
    """The ``deploy:`` section of ``shipyard.yaml``."""

    model_config = _STRICT
    models: dict[str, ServedModelSpec]
    # None: each model's manifest decides (input_policy.unseen_categories, strict by default)
    unseen_categories: Literal["error", "unknown"] | None = None
    max_body_bytes: int = Field(1_000_000, ge=1_000)
    poll_interval_s: float = Field(2.0, gt=0)
    fast_path: bool = True  # serve a verified ONNX export when the model has one


@dataclass(frozen=True)
class Route:
    """Where one request goes: the answering alias, and an alias that only watches."""

    answer: str
    shadow: str | None = None


def _unit(key: str, salt: str) -> float:
    """A stable number in [0, 1) for a request key (the same key always lands the same)."""
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class _Window:
    errors: deque[bool]
    latencies: deque[float]
    scores: deque[float]

    @classmethod
    def of(cls, size: int) -> _Window:
        return cls(deque(maxlen=size), deque(maxlen=size), deque(maxlen=size))


@dataclass
class CanaryState:
    """What a canary has seen, per alias, and how it ended."""

    status: Literal["running", "rolled_back", "promoted"] = "running"
    reason: str = ""
    challenger_requests: int = 0
    windows: dict[str, _Window] = field(default_factory=dict)
    # challenger requests and errors not yet added to the deployment's shared counts
    unsynced_requests: int = 0
    unsynced_errors: int = 0


class Router:
    """Chooses routes for one served name and, for canaries, judges the challenger."""

    def __init__(
        self, name: str, spec: ServedModelSpec, *, rng: random.Random | None = None
    ) -> None:
        self.name = name
        self.spec = spec
        # Traffic splitting needs spread, not secrecy.
        self._rng = rng or random.Random()  # noqa: S311
        self._lock = threading.Lock()
        self.canary = CanaryState()
        self._plain = Route(spec.champion)  # routes are immutable: one for every request

    def route(self, headers: Mapping[str, str]) -> Route:
        """Pick the answering alias (and shadow) for a request with these (lower-case) headers."""
        policy = self.spec.policy
        champion = self.spec.champion
        if policy is None:
            return self._plain
        if isinstance(policy, ShadowPolicy):
            return Route(champion, shadow=policy.challenger)
        if isinstance(policy, CanaryPolicy):
            if self.canary.status != "running":
                return Route(champion)
            share = self._share(headers.get(policy.sticky_header))
            return Route(policy.challenger if share < policy.percent / 100 else champion)
        total = sum(policy.weights.values())
        point = self._share(headers.get(policy.sticky_header)) * total
        for alias, weight in policy.weights.items():
            if point < weight:
                return Route(alias)
            point -= weight
        return Route(champion)

    def _share(self, key: str | None) -> float:
        return self._rng.random() if key is None else _unit(key, self.name)

    def observe(
        self, alias: str, *, error: bool, latency_ms: float, score: float | None
    ) -> str | None:
        """Record one answered request; say "rollback" or "promote" when a canary decides."""
        policy = self.spec.policy
        if not isinstance(policy, CanaryPolicy) or self.canary.status != "running":
            return None
        with self._lock:
            window = self.canary.windows.setdefault(alias, _Window.of(policy.window))
            window.errors.append(error)
            window.latencies.append(latency_ms)
            if score is not None:
                window.scores.append(score)
            if alias != policy.challenger:
                return None
            self.canary.challenger_requests += 1
            self.canary.unsynced_requests += 1
            self.canary.unsynced_errors += int(error)
            verdict = self._judge(policy)
            if verdict is not None:
                self.canary.status = "rolled_back" if verdict[0] == "rollback" else "promoted"
                self.canary.reason = verdict[1]
                return verdict[0]
        return None

    def take_unsynced(self) -> tuple[int, int]:
        """The challenger requests and errors seen since the last call, and reset them."""
        with self._lock:
            counts = (self.canary.unsynced_requests, self.canary.unsynced_errors)
            self.canary.unsynced_requests = self.canary.unsynced_errors = 0
        return counts

    def settle(self, verdict: Literal["rolled_back", "promoted"], reason: str) -> bool:
        """End a running canary with a verdict reached elsewhere; return whether it ran."""
        with self._lock:
            if self.canary.status != "running":
                return False
            self.canary.status = verdict
            self.canary.reason = reason
        return True

    def _judge(self, policy: CanaryPolicy) -> tuple[str, str] | None:
        challenger = self.canary.windows[policy.challenger]
        if len(challenger.errors) < policy.min_requests:
            return None
        error_rate = sum(challenger.errors) / len(challenger.errors)
        if error_rate > policy.max_error_rate:
            return "rollback", f"error rate {error_rate:.1%} over {policy.max_error_rate:.1%}"
        if policy.max_p99_ms is not None:
            p99 = float(np.percentile(list(challenger.latencies), 99))
            if p99 > policy.max_p99_ms:
                return "rollback", f"p99 latency {p99:.1f} ms over {policy.max_p99_ms} ms"
        champion = self.canary.windows.get(self.spec.champion)
        if (
            policy.max_score_shift is not None
            and champion
            and champion.scores
            and challenger.scores
        ):
            shift = abs(float(np.mean(challenger.scores)) - float(np.mean(champion.scores)))
            if shift > policy.max_score_shift:
                return (
                    "rollback",
                    f"mean score shifted by {shift:.3f} (limit {policy.max_score_shift})",
                )
        if (
            policy.promote_after is not None
            and self.canary.challenger_requests >= policy.promote_after
        ):
            return "promote", f"{self.canary.challenger_requests} requests without incident"
        return None

    def status(self) -> dict[str, Any]:
        """Policy and canary state for the admin endpoint."""
        out: dict[str, Any] = {
            "policy": None if self.spec.policy is None else self.spec.policy.model_dump()
        }
        if isinstance(self.spec.policy, CanaryPolicy):
            out["canary"] = {
                "status": self.canary.status,
                "reason": self.canary.reason,
                "challenger_requests": self.canary.challenger_requests,
            }
        return out
