"""Reading the registry: references, versions, aliases, history, comparisons, invariants.

The read side of ``ModelRegistry`` (a base class, so ``registry.get`` stays where users look),
apart from the module that moves aliases so that each stays small.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from shipyard.core.errors import InvalidArgument, NotFound
from shipyard.registry.names import REF, check_name

if TYPE_CHECKING:
    import polars as pl

    from shipyard.core.settings import RegistrySettings
    from shipyard.registry.bundle import Bundle
    from shipyard.registry.registry import ModelRegistry
    from shipyard.store.registry import AliasEvent, ModelVersion, RegistryStore


class RegistryReads:
    """What ``ModelRegistry`` answers without changing anything."""

    store: RegistryStore

    def load(self, ref: str | ModelVersion, *, defer_model: bool = False) -> Bundle:
        """Implemented by ``ModelRegistry``."""
        raise NotImplementedError

    def get(self, ref: str) -> ModelVersion:
        """Resolve ``name``, ``name:N`` or ``name@alias`` to a version.

        Raises:
            InvalidArgument: Malformed reference. NotFound: no such model, version or alias.
        """
        match = REF.match(ref.strip()) if isinstance(ref, str) else None
        if match is None:
            raise InvalidArgument(f"model reference {ref!r}: use name, name:3 or name@production")
        name, alias, version = match["name"], match["alias"], match["version"]
        if version is not None:
            return self.store.get_version(name, int(version))
        if alias is not None:
            held = self.store.resolve_alias(name, alias)
            if held is None:
                raise NotFound(f"{name}@{alias} points nowhere yet; promote a version to it first")
            return self.store.get_version(name, held)
        return self.store.latest_version(name)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        return self.store.list_versions(name)

    def list_models(self) -> list[dict[str, Any]]:
        """Every model with its version count, latest version and aliases."""
        return self.store.list_models()

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of ``name``."""
        return self.store.aliases(name)

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Alias moves and refusals of ``name``, oldest first.

        Raises:
            InvalidArgument: ``name`` is malformed. NotFound: no model has this name.
        """
        events = self.store.history(check_name(name), alias)
        if not events:
            self.store.latest_version(name)  # NotFound rather than an empty history
        return events

    def check_invariants(self, *, load_aliases: bool = True) -> list[str]:
        """List breaches of RELIABILITY.md invariants 1-2 (``registry/inspection.py``)."""
        from shipyard.registry.inspection import check_invariants

        return check_invariants(cast("ModelRegistry", self), load_aliases=load_aliases)

    def compare(
        self, name: str, versions: list[int], *, test_data: pl.DataFrame | None = None
    ) -> list[dict[str, Any]]:
        """Versions side by side on one test frame (``registry/inspection.py``)."""
        from shipyard.registry.inspection import compare_versions

        return compare_versions(cast("ModelRegistry", self), name, versions, test_data=test_data)


def read_under_limits(
    data: bytes, limits: RegistrySettings, sha256: str | None, label: str, defer: bool = False
) -> Bundle:
    """The one way bundle bytes are read (the registry, and Ray workers given its bytes)."""
    from shipyard.registry.bundle import read_bundle  # numpy, polars: not for listings

    return read_bundle(
        data,
        expected_sha256=sha256,
        max_bytes=limits.max_bundle_bytes,
        max_members=limits.max_bundle_members,
        max_uncompressed=limits.max_bundle_bytes,
        max_ratio=limits.max_compression_ratio,
        label=label,
        defer_model=defer,
    )
