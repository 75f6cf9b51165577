"""The metadata store contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from shipyard.core.errors import ParamConflict, RunNotActive, RunNotFound
from shipyard.store.entities import Resources, RunStatus
from shipyard.store.filters import parse_filter, parse_order_by
from shipyard.store.migrate import current_revision, head_revision, upgrade_to_head
from shipyard.store.models import full_metadata
from shipyard.store.sql import SqlStore
from tests.factories import T0, make_run


@pytest.fixture
def store(store_url: str):
    s = SqlStore(store_url)
    yield s
    s.close()


def search(store: SqlStore, text: str, order: tuple[str, ...] = (), limit: int | None = None):
    return [
        r.name
        for r in store.search_runs(
            parse_filter(text),
            experiments=None,
            order_by=[parse_order_by(o) for o in order],
            limit=limit,
        )
    ]


def test_migrations_match_the_models(store: SqlStore) -> None:
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), full_metadata())
    assert diff == []


def test_reopening_applies_nothing(store: SqlStore) -> None:
    assert upgrade_to_head(store.engine) is False


def test_experiments_are_created_once(store: SqlStore) -> None:
    first = store.get_or_create_experiment("churn", T0)
    again = store.get_or_create_experiment("churn", T0 + 5)
    assert first.experiment_id == again.experiment_id
    make_run(store, "churn")
    listed = {e.name: e.run_count for e in store.list_experiments()}
    assert listed == {"churn": 1}


def test_params_are_write_once(store: SqlStore) -> None:
    run_id = make_run(store)
    store.log_params(run_id, {"lr": "0.1", "depth": "3"})
    store.log_params(run_id, {"lr": "0.1"})  # same value: accepted, no-op
    with pytest.raises(ParamConflict, match=r"lr: '0.1' then '0.2'"):
        store.log_params(run_id, {"lr": "0.2", "new": "x"})
    run = store.get_run(run_id)
    # the refused batch wrote nothing, not even its valid part
    assert run.params == {"lr": "0.1", "depth": "3"}


def test_tags_can_change(store: SqlStore) -> None:
    run_id = make_run(store)
    store.set_tags(run_id, {"team": "risk"})
    store.set_tags(run_id, {"team": "ops", "stage": "dev"})
    assert store.get_run(run_id).tags == {"team": "ops", "stage": "dev"}


def test_metrics_keep_nan_infinity_and_history(store: SqlStore) -> None:
    run_id = make_run(store)
    store.log_metrics(
        [
            (run_id, "loss", 0.5, 0, T0),
            (run_id, "loss", 0.25, 1, T0 + 1),
            (run_id, "odd", math.nan, 0, T0),
            (run_id, "big", math.inf, 0, T0),
            (run_id, "small", -math.inf, 0, T0),
        ]
    )
    store.log_metrics([(run_id, "loss", 0.9, 0, T0 + 2)])  # an older step logged late
    run = store.get_run(run_id)
    assert run.metrics["loss"] == 0.25  # the latest step wins, not the latest write
    assert math.isnan(run.metrics["odd"])
    assert run.metrics["big"] == math.inf
    assert run.metrics["small"] == -math.inf
    history = store.metric_history(run_id, "loss")
    assert [(p.step, p.value) for p in history] == [(0, 0.5), (0, 0.9), (1, 0.25)]
    assert math.isnan(store.metric_history(run_id, "odd")[0].value)
    assert store.count_metrics([run_id]) == 6


def test_run_ends_exactly_once(store: SqlStore) -> None:
    run_id = make_run(store)
    resources = Resources(wall_seconds=1.5, cpu_user_seconds=1.0, peak_rss_bytes=10)
    assert store.end_run(run_id, RunStatus.FINISHED, T0 + 10, None, resources) is True
    assert store.end_run(run_id, RunStatus.KILLED, T0 + 20, "late", Resources()) is False
    run = store.get_run(run_id)
    assert run.status is RunStatus.FINISHED
    assert run.end_ms == T0 + 10
    assert run.resources.wall_seconds == 1.5
    with pytest.raises(RunNotActive):
        store.log_params(run_id, {"x": "1"})


def test_get_run_by_prefix_and_errors(store: SqlStore) -> None:
    run_id = make_run(store)
    assert store.get_run(run_id[:8]).run_id == run_id
    with pytest.raises(RunNotFound, match="no run matches"):
        store.get_run("0" * 32)
    with pytest.raises(RunNotFound, match="not a run id"):
        store.get_run("x'; DROP TABLE runs; --")
    with pytest.raises(RunNotFound, match="not a run id"):
        store.get_run("abc")


@pytest.fixture
def populated(store: SqlStore) -> SqlStore:
    runs = {
        "lgbm-a": ({"model": "lgbm", "lr": "0.1"}, {"team": "risk"}, {"auc": 0.95}),
        "lgbm-b": ({"model": "lgbm", "lr": "0.01"}, {"team": "ops"}, {"auc": 0.85}),
        "rf": ({"model": "rf", "lr": "n/a"}, {}, {"auc": 0.91, "loss": 0.3}),
        "broken": ({"model": "rf"}, {}, {"auc": math.nan}),
    }
    for offset, (name, (params, tags, metrics)) in enumerate(runs.items()):
        run_id = make_run(store, "search", name, start_ms=T0 + offset)
        store.log_params(run_id, params)
        store.set_tags(run_id, tags)
        store.log_metrics([(run_id, k, v, 0, T0) for k, v in metrics.items()])
    other = make_run(store, "other", "elsewhere")
    store.log_metrics([(other, "auc", 0.99, 0, T0)])
    store.end_run(other, RunStatus.FAILED, T0 + 1, "boom", Resources())
    return store


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.auc > 0.9 and params.model = 'lgbm'", {"lgbm-a"}),
        ("metrics.auc > 0.9", {"lgbm-a", "rf", "elsewhere"}),
        ("metrics.auc <= 0.9", {"lgbm-b"}),  # NaN matches no comparison
        ("metrics.auc is null", {"broken"}),
        ("metrics.loss is not null", {"rf"}),
        ("params.lr > 0.05", {"lgbm-a"}),  # 'n/a' is not a number: no match, no error
        ("params.lr = 0.01", {"lgbm-b"}),
        ("params.lr = 'n/a'", {"rf"}),
        ("tags.team = 'risk' or tags.team = 'ops'", {"lgbm-a", "lgbm-b"}),
        ("tags.team != 'risk'", {"lgbm-b"}),
        ("not tags.team = 'risk' and experiment = 'search'", {"lgbm-b", "rf", "broken"}),
        ("name like 'lgbm-%'", {"lgbm-a", "lgbm-b"}),
        ("name ilike 'LGBM-A'", {"lgbm-a"}),
        ("params.model in ('rf', 'xgb')", {"rf", "broken"}),
        ("status = 'failed'", {"elsewhere"}),
        ("status in ('running') and metrics.auc > 0.9", {"lgbm-a", "rf"}),
        ("experiment = 'other'", {"elsewhere"}),
        ("params.model = 'x\"; DROP TABLE runs; --'", set()),
        ("start_time >= 1700000000002 and experiment = 'search'", {"rf", "broken"}),
    ],
)
def test_filter_language(populated: SqlStore, text: str, expected: set[str]) -> None:
    assert set(search(populated, text)) == expected


def test_order_and_limit(populated: SqlStore) -> None:
    assert search(populated, "experiment = 'search'", ("metrics.auc desc",)) == [
        "lgbm-a",
        "rf",
        "lgbm-b",
        "broken",  # NaN (NULL) sorts last
    ]
    assert search(populated, "", ("metrics.auc desc",), limit=2) == ["elsewhere", "lgbm-a"]
    assert search(populated, "experiment = 'search'", ("params.lr",)) == [
        "lgbm-b",
        "lgbm-a",
        "rf",
        "broken",  # text order; missing last
    ]
    # default order: newest first
    assert search(populated, "experiment = 'search'")[0] == "broken"


def test_search_by_experiment_list(populated: SqlStore) -> None:
    runs = populated.search_runs(None, experiments=["other"], order_by=[], limit=None)
    assert [r.name for r in runs] == ["elsewhere"]
    assert runs[0].status is RunStatus.FAILED
    assert runs[0].error == "boom"


def test_sqlite_store_passes_integrity_check(tmp_path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'x.db'}")
    make_run(store)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def test_unknown_backend_is_a_clear_error() -> None:
    from shipyard.core.errors import InvalidSettings

    with pytest.raises(InvalidSettings, match="unsupported store backend 'mysql'"):
        SqlStore("mysql://localhost/x")
    with pytest.raises(InvalidSettings, match="not a valid SQLAlchemy URL"):
        SqlStore("::not a url::")


@pytest.mark.postgres
def test_no_session_left_idle_in_transaction(pg_url: str) -> None:
    store = SqlStore(pg_url)
    try:
        run_id = make_run(store)
        store.log_metrics([(run_id, "auc", 0.5, 0, T0)])
        store.log_params(run_id, {"p": "1"})
        search(store, "metrics.auc > 0")
        with pytest.raises(ParamConflict):
            store.log_params(run_id, {"p": "2"})
        with store.engine.connect() as connection:
            idle = connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND state = 'idle in transaction' "
                    "AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        assert idle == 0
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://postgres:secret@127.0.0.1:1/x", "cannot open the metadata store"),
        ("sqlite:////proc/not-here/shipyard.db", "cannot create the folder"),
    ],
)
def test_unreachable_stores_are_a_clear_error(url: str, message: str) -> None:
    from shipyard.core.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable, match=message) as caught:
        SqlStore(url)
    assert "secret" not in str(caught.value)
