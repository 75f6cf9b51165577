"""The price catalog: shipped, overridden per workspace, refused when malformed."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from shipyard.core.errors import InvalidArgument, InvalidSettings, NotFound
from shipyard.core.settings import load_settings
from shipyard.cost.catalog import active_instance, catalog_for, load_catalog


def test_shipped_catalog_is_labelled_example_prices_with_a_date() -> None:
    catalog = load_catalog()
    assert "example" in catalog.source
    assert catalog.taken_on == "2025-01-15"
    m5 = catalog.instance("m5.large")
    assert (m5.vcpus, m5.gpus) == (2, 0)
    assert m5.hourly("on_demand") == Decimal("0.096")
    assert m5.hourly("spot") < m5.hourly("reserved") < m5.hourly("on_demand")
    assert set(catalog.storage) == {"hot", "infrequent", "archive"}
    assert catalog.egress_per_gb == Decimal("0.09")
    assert catalog.instance("g4dn.xlarge").gpus == 1


def test_workspace_file_overrides_by_name_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "prices.yaml").write_text(
        "source: our negotiated prices\n"
        "taken_on: '2026-01-01'\n"
        "instances:\n"
        "  m5.large: {vcpus: 2, memory_gib: 8, on_demand_hourly: '0.05',"
        " spot_hourly: '0.02', reserved_hourly: '0.03'}\n"
        "  box: {vcpus: 64, memory_gib: 256, on_demand_hourly: '1', spot_hourly: '0.5',"
        " reserved_hourly: '0.7'}\n"
        "storage:\n  hot: {per_gb_month: '0.02'}\n",
        encoding="utf-8",
    )
    catalog = load_catalog(tmp_path)
    assert catalog.instance("m5.large").on_demand_hourly == Decimal("0.05")
    assert catalog.instance("box").vcpus == 64
    assert catalog.instance("c5.large").on_demand_hourly == Decimal("0.085")  # kept
    assert catalog.tier("hot").per_gb_month == Decimal("0.02")
    assert catalog.tier("archive").per_gb_month == Decimal("0.00099")
    assert catalog.source == "our negotiated prices"
    assert catalog.origins[-1] == str(tmp_path / "prices.yaml")


def test_active_instance_comes_from_settings(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text(
        "cost:\n  instance_type: c5.xlarge\n  purchase: spot\n", encoding="utf-8"
    )
    settings = load_settings(project_dir=tmp_path)
    active = active_instance(settings)
    assert active.instance.name == "c5.xlarge"
    assert active.hourly == Decimal("0.0640")


def test_cost_catalog_setting_names_an_explicit_file(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.yaml"
    other.write_text("currency: EUR\n", encoding="utf-8")
    settings = load_settings(project_dir=tmp_path, cost={"catalog": other})
    assert catalog_for(settings).currency == "EUR"
    missing = load_settings(project_dir=tmp_path, cost={"catalog": tmp_path / "nope.yaml"})
    with pytest.raises(InvalidSettings, match="does not exist"):
        catalog_for(missing)


def test_unknown_instance_names_the_known_ones(tmp_path: Path) -> None:
    settings = load_settings(project_dir=tmp_path, cost={"instance_type": "z9.huge"})
    with pytest.raises(NotFound, match=r"m5\.large"):
        active_instance(settings)
    with pytest.raises(NotFound, match="hot"):
        load_catalog().tier("glacier")
    with pytest.raises(InvalidArgument, match="purchase"):
        load_catalog().instance("m5.large").hourly("lease")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("instances: [1, 2]\n", "must be a mapping"),
        ("instances:\n  x: 3\n", "must be a mapping of prices"),
        (
            "instances:\n  x: {vcpus: 0, memory_gib: 1, on_demand_hourly: '1',"
            " spot_hourly: '1', reserved_hourly: '1'}\n",
            "vcpus",
        ),
        (
            "instances:\n  x: {vcpus: 2, memory_gib: 1, on_demand_hourly: '-1',"
            " spot_hourly: '1', reserved_hourly: '1'}\n",
            "on_demand_hourly",
        ),
        ("instances:\n  x: {vcpus: 2}\n", "memory_gib"),
        ("storage:\n  hot: {per_gb_month: cheap}\n", "per_gb_month"),
        ("taxes: {}\n", "unknown section"),
        ("- a\n- b\n", "mapping at the top level"),
        ("instances: {a: [\n", "not valid YAML"),
    ],
)
def test_malformed_override_is_refused_naming_the_file(
    tmp_path: Path, text: str, problem: str
) -> None:
    (tmp_path / "prices.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(InvalidSettings, match=problem) as caught:
        load_catalog(tmp_path)
    assert "prices.yaml" in str(caught.value)


def test_settings_refuse_an_unknown_purchase_option(tmp_path: Path) -> None:
    with pytest.raises(InvalidSettings, match="purchase"):
        load_settings(project_dir=tmp_path, cost={"purchase": "lease"})
