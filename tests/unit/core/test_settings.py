"""Settings: environment over project file over defaults; bad values are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.core.errors import InvalidSettings
from shipyard.core.settings import load_settings


def test_defaults_live_in_the_project(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.project_dir == tmp_path
    assert settings.resolved_store_url == f"sqlite:///{tmp_path / '.shipyard' / 'shipyard.db'}"
    assert settings.resolved_artifact_root == str(tmp_path / ".shipyard" / "artifacts")
    assert settings.tracking.flush_interval_s == 1.0


def test_project_file_then_environment_then_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shipyard.yaml").write_text(
        "workspace:\n  store_url: sqlite:////from/yaml.db\n  artifact_root: /yaml/art\n"
        "tracking:\n  flush_size: 10\n  flush_interval_s: 2\n"
        "sources: {ignored: here}\n"
    )
    settings = load_settings()
    assert settings.store_url == "sqlite:////from/yaml.db"
    assert settings.tracking.flush_size == 10
    monkeypatch.setenv("SHIPYARD_STORE_URL", "sqlite:////from/env.db")
    monkeypatch.setenv("SHIPYARD_TRACKING__FLUSH_SIZE", "20")
    settings = load_settings()
    assert settings.store_url == "sqlite:////from/env.db"
    assert settings.tracking.flush_size == 20
    assert settings.tracking.flush_interval_s == 2.0  # still from the file: merged, not replaced
    assert settings.artifact_root == "/yaml/art"
    assert load_settings(store_url="sqlite:////arg.db").store_url == "sqlite:////arg.db"


def test_project_dir_argument_reads_that_projects_file(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "shipyard.yaml").write_text("workspace:\n  artifact_root: /other/art\n")
    assert load_settings(project_dir=other).artifact_root == "/other/art"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("workspace: [1, 2", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("workspace: 5\n", "'workspace' must be a mapping"),
        ("tracking:\n  flush_size: lots\n", "tracking.flush_size"),
        ("tracking:\n  flush_interval_s: -1\n", "tracking.flush_interval_s"),
        ("tracking:\n  surprise: 1\n", "tracking.surprise"),
    ],
)
def test_bad_project_files_are_named_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "shipyard.yaml").write_text(content)
    with pytest.raises(InvalidSettings, match=message):
        load_settings()


def test_bad_environment_values_are_named_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_TRACKING__HEARTBEAT_INTERVAL_S", "soon")
    with pytest.raises(InvalidSettings, match=r"tracking.heartbeat_interval_s.*SHIPYARD_"):
        load_settings()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "name: demo\n\ntracking:\n  flush_size: lots\n",
            r"shipyard\.yaml:4: tracking\.flush_size",
        ),
        (
            "tracking:\n  flush_interval_s: 1\n  surprise: 1\n",
            r"shipyard\.yaml:3: tracking\.surprise",
        ),
        ("workspace:\n  audit:\n    anchor_every: 0\n", r"shipyard\.yaml:3: audit\.anchor_every"),
        ("cost:\n  purchase: cheap\n", r"shipyard\.yaml:2: cost\.purchase"),
        ("name: x\nworkspace: [1, 2\n", r"shipyard\.yaml:\d+: not valid YAML"),
        ("name: x\nworkspace: 5\n", r"shipyard\.yaml:2: 'workspace' must be a mapping"),
    ],
)
def test_project_file_errors_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    # The settings read shipyard.yaml with the pipeline's parser, so they point at lines too.
    (tmp_path / "shipyard.yaml").write_text(content)
    with pytest.raises(InvalidSettings, match=message):
        load_settings()


def test_a_bad_value_from_the_environment_is_not_blamed_on_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shipyard.yaml").write_text("tracking:\n  flush_size: 10\n")
    monkeypatch.setenv("SHIPYARD_TRACKING__FLUSH_SIZE", "lots")
    with pytest.raises(InvalidSettings, match=r"tracking\.flush_size") as raised:
        load_settings()
    assert "shipyard.yaml:" not in str(raised.value)


def test_settings_and_the_pipeline_parse_the_project_file_the_same_way(tmp_path: Path) -> None:
    from shipyard.core.project_file import load_yaml
    from shipyard.core.settings import read_project_file

    (tmp_path / "shipyard.yaml").write_text("name: x\ntracking: {flush_size: 7}\nsources: {}\n")
    document = read_project_file(tmp_path)
    assert document is not None
    assert document.data == load_yaml(tmp_path / "shipyard.yaml").data
    assert document.line_of(("tracking", "flush_size")) == 2
    assert load_settings().tracking.flush_size == 7


def test_metering_is_a_setting_with_the_documented_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert load_settings().cost.metering is True
    monkeypatch.setenv("SHIPYARD_COST__METERING", "off")
    assert load_settings().cost.metering is False


def test_a_file_read_again_gives_its_current_values_in_a_mapping_of_its_own(
    tmp_path: Path,
) -> None:
    # Parses are shared by text (one command reads the file several times), values are not.
    from shipyard.core.project_file import load_yaml

    path = tmp_path / "shipyard.yaml"
    path.write_text("tracking: {flush_size: 7}\n")
    first = load_yaml(path)
    first.data["tracking"]["flush_size"] = 99
    assert load_yaml(path).data == {"tracking": {"flush_size": 7}}
    assert load_settings().tracking.flush_size == 7
    path.write_text("tracking: {flush_size: 8}\n")
    assert load_settings().tracking.flush_size == 8
    assert load_yaml(path).line_of(("tracking", "flush_size")) == 1


def test_a_reviews_section_is_checked_by_its_model_only_when_present(tmp_path: Path) -> None:
    assert load_settings().reviews is None  # no section: no rule, and no pydantic import
    path = tmp_path / "shipyard.yaml"
    path.write_text("name: x\nreviews:\n  default:\n    production: {approvals: 11}\n")
    with pytest.raises(
        InvalidSettings, match=r"shipyard\.yaml:4: reviews\.default\.production\.approvals"
    ):
        load_settings()
    path.write_text("reviews:\n  default:\n    production: {approvals: 2}\n")
    reviews = load_settings().reviews
    assert reviews is not None
    rule = reviews.rule_for("m", "production")
    assert rule is not None
    assert rule.approvals == 2
