"""The price catalog: what an instance hour, a GB-month of storage and a GB of egress cost.

Prices are data, never constants: a YAML catalog ships with the package (``prices.yaml`` beside
this module, labelled as example prices with the date they were taken) and a workspace overrides
it with its own file, ``<project>/prices.yaml`` or the file named by the ``cost.catalog`` setting.
An override is merged over the shipped catalog by name: an instance type or storage tier it
names replaces the shipped entry whole, one it does not name is kept, and its ``currency``,
``source``, ``taken_on`` and ``egress`` replace the shipped ones when given. Money is ``Decimal``
end to end (prices are written as strings in YAML so no float ever touches them).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shipyard.core.errors import InvalidArgument, InvalidSettings, NotFound

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.core.settings import Settings

CATALOG_FILE = "prices.yaml"
Purchase = Literal["on_demand", "spot", "reserved"]
PURCHASES: tuple[Purchase, ...] = ("on_demand", "spot", "reserved")

_STRICT = ConfigDict(extra="forbid", frozen=True)


class InstanceType(BaseModel):
    """One machine shape and its hourly prices by purchase option."""

    model_config = _STRICT

    name: str
    vcpus: int = Field(gt=0)
    memory_gib: Decimal = Field(gt=0)
    gpus: int = Field(0, ge=0)
    on_demand_hourly: Decimal = Field(ge=0)
    spot_hourly: Decimal = Field(ge=0)
    reserved_hourly: Decimal = Field(ge=0)

    def hourly(self, purchase: str = "on_demand") -> Decimal:
        """Return the hourly price under ``purchase`` (on_demand, spot or reserved).

        Raises:
            InvalidArgument: ``purchase`` is not one of the three options.
        """
        if purchase not in PURCHASES:
            raise InvalidArgument(
                f"unknown purchase option {purchase!r}; use one of {', '.join(PURCHASES)}"
            )
        price: Decimal = getattr(self, f"{purchase}_hourly")
        return price


class StorageTier(BaseModel):
    """One storage class priced per GB-month."""

    model_config = _STRICT

    name: str
    per_gb_month: Decimal = Field(ge=0)


class PriceCatalog(BaseModel):
    """Every price Shipyard attributes costs with.

    Attributes:
        currency: ISO code of every price (``USD``).
        source: Where the prices come from (the shipped ones say they are examples).
        taken_on: The date the prices were taken (ISO ``YYYY-MM-DD``).
        instances: Instance types by name.
        storage: Storage tiers by name (``hot``, ``infrequent``, ``archive``).
        egress_per_gb: Price of one GB leaving the cloud.
        origins: The files merged into this catalog, shipped one first.
    """

    model_config = _STRICT

    currency: str = Field(min_length=3, max_length=3)
    source: str
    taken_on: str
    instances: dict[str, InstanceType]
    storage: dict[str, StorageTier]
    egress_per_gb: Decimal = Field(ge=0)
    origins: tuple[str, ...] = ()

    def instance(self, name: str) -> InstanceType:
        """Return an instance type by name.

        Raises:
            NotFound: The catalog has no such instance type; the message lists the known ones.
        """
        found = self.instances.get(name)
        if found is None:
            known = ", ".join(sorted(self.instances))
            raise NotFound(
                f"no instance type {name!r} in the price catalog (known: {known}); "
                f"add it to {CATALOG_FILE} in the project"
            )
        return found

    def tier(self, name: str) -> StorageTier:
        """Return a storage tier by name.

        Raises:
            NotFound: The catalog has no such tier.
        """
        found = self.storage.get(name)
        if found is None:
            raise NotFound(
                f"no storage tier {name!r} in the price catalog (known: "
                f"{', '.join(sorted(self.storage))})"
            )
        return found

    def label(self) -> str:
        """One line saying what the prices are, for report footers."""
        return f"prices in {self.currency}: {self.source} (taken {self.taken_on})"


@dataclass(frozen=True, slots=True)
class ActiveInstance:
    """The instance type and purchase option the workspace's compute is priced as."""

    instance: InstanceType
    purchase: Purchase

    @property
    def hourly(self) -> Decimal:
        """The hourly price that applies."""
        return self.instance.hourly(self.purchase)


def shipped_catalog_text() -> str:
    """Return the YAML of the catalog that ships with the package."""
    return resources.files("shipyard.cost").joinpath(CATALOG_FILE).read_text(encoding="utf-8")


def load_catalog(workspace_root: Path | None = None, *, path: Path | None = None) -> PriceCatalog:
    """Return the shipped catalog with the workspace's override merged over it.

    Args:
        workspace_root: The project folder; its ``prices.yaml`` is merged when present.
        path: An explicit override file (the ``cost.catalog`` setting); it must exist.

    Raises:
        InvalidSettings: An override file is missing (when named), not YAML, or has a wrong
            field; the message names the file and the field.
    """
    document = _parse(shipped_catalog_text(), "the shipped price catalog")
    origins = ["shipyard/cost/prices.yaml"]
    override: Path | None = None
    if path is not None:
        if not path.is_file():
            raise InvalidSettings(f"price catalog {path} does not exist; fix cost.catalog")
        override = path
    elif workspace_root is not None and (workspace_root / CATALOG_FILE).is_file():
        override = workspace_root / CATALOG_FILE
    if override is not None:
        document = _merge(document, _parse(override.read_text(encoding="utf-8"), str(override)))
        origins.append(str(override))
    return _build(document, origins)


def catalog_for(settings: Settings) -> PriceCatalog:
    """Return the catalog a workspace's settings select."""
    return load_catalog(settings.project_dir, path=settings.cost.catalog)


def active_instance(settings: Settings, catalog: PriceCatalog | None = None) -> ActiveInstance:
    """Return the instance type and purchase option from the ``cost`` settings.

    Raises:
        NotFound: The configured instance type is not in the catalog.
    """
    catalog = catalog or catalog_for(settings)
    purchase = settings.cost.purchase
    if purchase not in PURCHASES:  # the settings model checks it too; keep mypy honest
        raise InvalidSettings(f"cost.purchase must be one of {', '.join(PURCHASES)}")
    return ActiveInstance(catalog.instance(settings.cost.instance_type), purchase)


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise InvalidSettings(f"{where}: not valid YAML: {e}") from e
    if not isinstance(document, dict):
        raise InvalidSettings(f"{where}: expected a mapping at the top level")
    for section in ("instances", "storage", "egress"):
        if section in document and not isinstance(document[section], dict):
            raise InvalidSettings(f"{where}: {section!r} must be a mapping")
    document["_where"] = where
    return document


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **{k: v for k, v in override.items() if k not in ("instances", "storage")}}
    merged["instances"] = {**base.get("instances", {}), **(override.get("instances") or {})}
    merged["storage"] = {**base.get("storage", {}), **(override.get("storage") or {})}
    return merged


def _build(document: dict[str, Any], origins: list[str]) -> PriceCatalog:
    where = document.pop("_where", "price catalog")
    try:
        instances = {
            str(name): InstanceType.model_validate({**_mapping(spec, name, where), "name": name})
            for name, spec in (document.get("instances") or {}).items()
        }
        storage = {
            str(name): StorageTier.model_validate({**_mapping(spec, name, where), "name": name})
            for name, spec in (document.get("storage") or {}).items()
        }
        egress = document.get("egress") or {}
        unknown = set(document) - {"currency", "source", "taken_on", "instances", "storage"}
        unknown -= {"egress"}
        if unknown:
            raise InvalidSettings(f"{where}: unknown section(s) {', '.join(sorted(unknown))}")
        return PriceCatalog(
            currency=document.get("currency", "USD"),
            source=str(document.get("source", "unspecified")),
            taken_on=str(document.get("taken_on", "unknown")),
            instances=instances,
            storage=storage,
            egress_per_gb=egress.get("per_gb", "0"),
            origins=tuple(origins),
        )
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise InvalidSettings(f"{where}: invalid price catalog ({problems})") from e


def _mapping(spec: Any, name: object, where: str) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise InvalidSettings(f"{where}: entry {name!r} must be a mapping of prices")
    return spec
