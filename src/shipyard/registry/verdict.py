"""The promotion gate's verdict: what it checked and found, stored with every alias event.

Apart from the gate itself (``registry.gate``) so that reading the registry's history (``models
history``, a replayed promotion) needs no dataframe or metric library (issue #17).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class GateCheck:
    """One named check and what it found."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateVerdict:
    """Whether the candidate may take the alias, and the numbers behind it."""

    passed: bool
    metric: str
    greater_is_better: bool
    candidate_score: float | None
    champion_score: float | None
    margin: float
    rows: int
    checks: list[GateCheck] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, stored with the alias event."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateVerdict:
        """Rebuild a verdict stored by ``to_dict`` (an alias event's ``gate``)."""
        fields = {k: v for k, v in data.items() if k != "checks"}
        return cls(**fields, checks=[GateCheck(**c) for c in data.get("checks", [])])

    def summary(self) -> str:
        """One line for people: the scores and the first failed check."""
        scores = (
            f"{self.metric}: candidate {_fmt(self.candidate_score)}, "
            f"holder {_fmt(self.champion_score)}"
        )
        failed = [c for c in self.checks if not c.passed]
        if not failed:
            return f"passed ({scores}, margin {self.margin:g})"
        return f"refused: {failed[0].detail} ({scores})"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
