"""The ``reviews:`` section of ``shipyard.yaml``: which aliases need four-eyes approval.

A rule per alias, for every model (``default``) and per model (``models``), the model's rule
winning for its aliases::

    reviews:
      default:
        production: {approvals: 1, approver_roles: [ml-engineer, admin]}
      models:
        churn:
          production: {approvals: 2}
          sandbox: {approvals: 0}       # 0: no review for this alias of this model

An alias with a rule never moves on ``promote``: a promotion request is made instead, and only
approvals by people other than the requester, holding one of ``approver_roles``, move it (see
``shipyard.registry.reviews`` and docs/reviews.md). Role names are checked here; what they may
do is the permission table's business (``shipyard.security.permissions``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RoleName = Literal["viewer", "data-scientist", "ml-engineer", "admin"]
_ALIAS_KEY = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class ReviewRule(BaseModel):
    """What a promotion to one alias needs.

    Attributes:
        approvals: Distinct approvers needed (none of them the requester); 0 turns reviews
            off for this alias (a model's rule can so exempt it from the default).
        approver_roles: Roles an approver must hold in the project.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    approvals: int = Field(1, ge=0, le=10)
    approver_roles: tuple[RoleName, ...] = Field(("ml-engineer", "admin"), min_length=1)


class ReviewSettings(BaseModel):
    """Review rules by alias, for every model and per model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: dict[str, ReviewRule] = Field(default_factory=dict)
    models: dict[str, dict[str, ReviewRule]] = Field(default_factory=dict)

    def rule_for(self, model: str, alias: str) -> ReviewRule | None:
        """The rule a promotion of ``model`` to ``alias`` follows; None when it needs no review."""
        rule = self.models.get(model, {}).get(alias) or self.default.get(alias)
        if rule is None or rule.approvals == 0:
            return None
        return rule
