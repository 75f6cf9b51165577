"""PostgreSQL ``sslmode`` travels in the store URL's query string down to psycopg.

The local test server runs without TLS, which makes every mode observable: ``disable`` and
``prefer`` connect in the clear, ``require`` must fail with a message that says why.
"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from shipyard.core.errors import StoreUnavailable
from shipyard.store.sql import SqlStore

pytestmark = pytest.mark.postgres


def with_sslmode(url: str, mode: str) -> str:
    return make_url(url).update_query_dict({"sslmode": mode}).render_as_string(hide_password=False)


@pytest.mark.parametrize("mode", ["disable", "prefer"])
def test_sslmode_reaches_psycopg_and_the_store_works(pg_url: str, mode: str) -> None:
    store = SqlStore(with_sslmode(pg_url, mode))
    try:
        experiment = store.get_or_create_experiment("tls", 1)
        assert store.get_experiment("tls").experiment_id == experiment.experiment_id
        with store.engine.connect() as connection:
            pgconn = connection.connection.driver_connection.pgconn  # type: ignore[union-attr]
            options = {o.keyword: o.val for o in pgconn.info}
            assert options[b"sslmode"] == mode.encode()
            assert pgconn.ssl_in_use is False  # the local server has no TLS
    finally:
        store.close()


def test_sslmode_require_against_a_server_without_tls_fails_clearly(pg_url: str) -> None:
    with pytest.raises(StoreUnavailable, match="server does not support SSL, but SSL was required"):
        SqlStore(with_sslmode(pg_url, "require"))


def test_an_unknown_sslmode_is_named(pg_url: str) -> None:
    with pytest.raises(StoreUnavailable, match='invalid sslmode value: "sometimes"'):
        SqlStore(with_sslmode(pg_url, "sometimes"))
