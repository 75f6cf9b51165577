"""Registered models, versions and aliases of the MLflow API, in Shipyard's registry.

A version registered through MLflow points at what MLflow calls its ``source`` (usually
``runs:/<run_id>/model`` or an artifact URI); Shipyard keeps that text in the version's
lineage (``mlflow_source``) with ``task = "mlflow"`` and no bundle blob, so it is listed,
aliased and audited like any version but cannot be served until it is registered as a
Shipyard bundle (``shipyard models register``). Aliases move through the registry's
compare-and-set with an event row and an audit entry, as ``shipyard models promote`` does.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import AlreadyExists, NotFound
from shipyard.registry.registry import ModelRegistry, check_name
from shipyard.security import audit
from shipyard.security.permissions import Action
from shipyard.serve.mlflow import wire
from shipyard.serve.mlflow.errors import MlflowError, invalid
from shipyard.serve.mlflow.tracking import page_offset, page_token
from shipyard.store import registry_names

if TYPE_CHECKING:
    from shipyard.security.identities import Identity
    from shipyard.serve.mlflow.wire import Fields
    from shipyard.store.registry_records import ModelVersion
    from shipyard.track.workspace import Workspace

#: No bundle blob: an MLflow version is a pointer to MLflow's ``source``.
NO_BUNDLE = "0" * 64
_FILTER = re.compile(
    r"\s*(name|run_id)\s*(=|LIKE|ILIKE)\s*'((?:[^'\\]|\\.)*)'\s*", flags=re.IGNORECASE
)


class ModelService:
    """The registry half of the MLflow API on one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.registry = ModelRegistry.for_workspace(workspace)
        self.store = self.registry.store
        self.engine = workspace.store.engine
        self.security = self.registry.security
        self.clock = workspace.clock

    # -- registered models ------------------------------------------------------------------

    def create_model(self, fields: Fields, identity: Identity) -> dict[str, Any]:
        """``registered-models/create`` (400 ``RESOURCE_ALREADY_EXISTS`` when taken)."""
        name = check_name(fields.text("name"))
        description = _description(fields)
        entry = self._audit(identity, Action.MODELS_REGISTER, f"model:{name}", op="create")
        try:
            registry_names.create_model(
                self.engine,
                self.security,
                name,
                description=description,
                created_ms=self.clock.now_ms(),
                audit=entry,
            )
        except AlreadyExists as e:
            raise MlflowError(400, "RESOURCE_ALREADY_EXISTS", e.message) from e
        return {"registered_model": self._model_json(name)}

    def get_model(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``registered-models/get``."""
        return {"registered_model": self._model_json(fields.text("name"))}

    def search_models(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``registered-models/search``: all, or by ``name = / LIKE '...'``."""
        names = [m["name"] for m in registry_names.list_models(self.engine)]
        text = fields.optional_text("filter")
        if text:
            _matches(text, {"name": ""}, ("name",))  # refused even when nothing is registered
            names = [n for n in names if _matches(text, {"name": n}, ("name",))]
        offset = page_offset(fields.optional_text("page_token"))
        limit = fields.integer("max_results", default=100)
        if limit <= 0:
            raise invalid("max_results must be positive")
        out: dict[str, Any] = {
            "registered_models": [self._model_json(n) for n in names[offset : offset + limit]]
        }
        if offset + limit < len(names):
            out["next_page_token"] = page_token(offset + limit)
        return out

    def _model_json(self, name: str) -> dict[str, Any]:
        row = registry_names.get_model(self.engine, name)
        versions = self.store.list_versions(name)
        aliases = self.store.aliases(name)
        updated = max([row["created_ms"], *(v.created_ms for v in versions)])
        out: dict[str, Any] = {
            "name": name,
            "creation_timestamp": row["created_ms"],
            "last_updated_timestamp": updated,
            "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(aliases.items())],
            "tags": [],
        }
        if versions:
            out["latest_versions"] = [self._version_json(versions[-1], aliases)]
        if row["description"]:
            out["description"] = row["description"]
        return out

    # -- versions ---------------------------------------------------------------------------

    def create_version(self, fields: Fields, identity: Identity) -> dict[str, Any]:
        """``model-versions/create``: the next version of an existing model, pointing at source."""
        name = check_name(fields.text("name"))
        registry_names.get_model(self.engine, name)  # MLflow wants the model created first
        source = fields.text("source")
        if len(source) > 2000:
            raise invalid("source is limited to 2000 characters")
        run_id = fields.optional_text("run_id")
        if run_id is not None and len(run_id) > 32:
            raise invalid(f"run_id {run_id[:40]!r} is not a run id (32 characters at most)")
        description = _description(fields)
        tags = {t.text("key"): str(t.get("value") or "") for t in fields.objects("tags")}
        values = {
            "name": name,
            "bundle_sha256": NO_BUNDLE,
            "size_bytes": 0,
            "run_id": run_id,
            "task": "mlflow",
            "primary_metric": "",
            "metrics": {},
            "lineage": {"mlflow_source": source, "mlflow_tags": tags},
            "description": description,
            "created_by": identity.name,
            "created_ms": self.clock.now_ms(),
        }
        entry = self._audit(identity, Action.MODELS_REGISTER, f"model:{name}", source=source)
        version, _ = self.store.create_version(values, audit=entry)
        return {"model_version": self._version_json(version)}

    def get_version(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``model-versions/get``."""
        version = self.store.get_version(
            fields.text("name"), wire.to_int(fields.get("version"), "version")
        )
        return {"model_version": self._version_json(version)}

    def search_versions(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``model-versions/search`` by ``name = '...'`` or ``run_id = '...'``."""
        text = fields.optional_text("filter")
        if text:
            _matches(text, {"name": "", "run_id": ""}, ("name", "run_id"))
        found: list[ModelVersion] = []
        for model in registry_names.list_models(self.engine):
            for version in self.store.list_versions(model["name"]):
                values = {"name": version.name, "run_id": version.run_id or ""}
                if not text or _matches(text, values, ("name", "run_id")):
                    found.append(version)
        offset = page_offset(fields.optional_text("page_token"))
        limit = fields.integer("max_results", default=10_000)
        if limit <= 0:
            raise invalid("max_results must be positive")
        page = found[offset : offset + limit]
        out: dict[str, Any] = {"model_versions": [self._version_json(v) for v in page]}
        if offset + limit < len(found):
            out["next_page_token"] = page_token(offset + limit)
        return out

    def _version_json(
        self, version: ModelVersion, aliases: dict[str, int] | None = None
    ) -> dict[str, Any]:
        if aliases is None:
            aliases = self.store.aliases(version.name)
        held = sorted(a for a, v in aliases.items() if v == version.version)
        return wire.version_json(version, held)

    # -- aliases ----------------------------------------------------------------------------

    def set_alias(self, fields: Fields, identity: Identity) -> dict[str, Any]:
        """``registered-models/alias`` POST: point the alias at a version (audited)."""
        name = check_name(fields.text("name"))
        alias = check_name(fields.text("alias"), "alias")
        version = wire.to_int(fields.get("version"), "version")
        current = self.store.resolve_alias(name, alias)
        detail = {"from": current, "to": version, "via": "mlflow"}
        self.store.move_alias(
            name,
            alias,
            to_version=version,
            expected_from=current,
            action="set",
            actor=identity.name,
            reason="set through the MLflow API",
            gate=None,
            at_ms=self.clock.now_ms(),
            audit=self._audit(identity, Action.MODELS_PROMOTE, f"{name}@{alias}", **detail),
        )
        return {}

    def get_alias(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``registered-models/alias`` GET: the version the alias points to."""
        name, alias = fields.text("name"), fields.text("alias")
        version = self.store.resolve_alias(name, alias)
        if version is None:
            raise NotFound(f"model {name!r} has no alias {alias!r}")
        return {"model_version": self._version_json(self.store.get_version(name, version))}

    def delete_alias(self, fields: Fields, identity: Identity) -> dict[str, Any]:
        """``registered-models/alias`` DELETE (audited)."""
        name, alias = fields.text("name"), fields.text("alias")
        registry_names.remove_alias(
            self.engine,
            self.security,
            name,
            alias,
            actor=identity.name,
            at_ms=self.clock.now_ms(),
            audit=self._audit(identity, Action.MODELS_PROMOTE, f"{name}@{alias}", op="unset"),
        )
        return {}

    def _audit(self, identity: Identity, action: Action, obj: str, **detail: Any) -> Any:
        return audit.draft(identity, action, obj, detail=detail, clock=self.clock)


def _description(fields: Fields) -> str | None:
    text = fields.optional_text("description")
    if text is not None and len(text) > 2000:
        raise invalid("description is limited to 2000 characters")
    return text


def _matches(text: str, values: dict[str, str], allowed: tuple[str, ...]) -> bool:
    """A registry filter: ``AND``-joined ``field = / LIKE / ILIKE '...'`` on ``allowed``."""
    for part in re.split(r"\s+AND\s+", text.strip(), flags=re.IGNORECASE):
        match = _FILTER.fullmatch(part)
        if match is None or match.group(1).lower() not in allowed:
            raise invalid(
                f"filter {text[:80]!r} is not supported; use {' or '.join(allowed)} "
                "= '...' or LIKE '...%'"
            )
        field, op, wanted = match.group(1).lower(), match.group(2).upper(), match.group(3)
        have = values[field]
        if op == "=":
            if have != wanted:
                return False
            continue
        pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in wanted)
        flags = re.IGNORECASE if op == "ILIKE" else 0
        if re.fullmatch(pattern, have, flags=flags) is None:
            return False
    return True
