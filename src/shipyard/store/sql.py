"""The metadata store on SQLAlchemy: SQLite by default, PostgreSQL by URL; same behaviour on both.

This is the narrow, validated-elsewhere persistence layer: the tracking service (``shipyard.track``)
checks names and values once, then calls these methods with plain rows. Bulk writes use one
statement per batch (``executemany``), never one ORM object per value.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from shipyard.core.errors import (
    ExperimentNotFound,
    ParamConflict,
    RunNotActive,
    RunNotFound,
    StoreUnavailable,
)
from shipyard.core.ids import new_id
from shipyard.store import search as run_search
from shipyard.store.engine import create_store_engine, run_write, upsert_insert
from shipyard.store.entities import (
    Artifact,
    Experiment,
    MetricPoint,
    Note,
    Resources,
    Run,
    RunStatus,
)
from shipyard.store.metric_rows import (
    COPY_MIN_ROWS,
    MetricTuple,
    StoredTuple,
    copy_rows,
    insert_for_run_sql,
    insert_sql,
    latest_by_key,
    latest_params,
    nan_as_null,
    upsert_latest,
)
from shipyard.store.migrate import current_revision, upgrade_to_head
from shipyard.store.models import (
    ArtifactRow,
    ExperimentRow,
    MetricRow,
    NoteRow,
    ParamRow,
    RunRow,
    TagRow,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from shipyard.store.filters import Expr, OrderKey


class SqlStore:
    """Metadata of experiments, runs, params, tags, metrics, artifacts and notes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_store_engine(url)
        try:
            upgrade_to_head(self.engine)
        except StoreUnavailable:  # already translated by the engine (store/engine.py)
            self.engine.dispose()
            raise
        except (DBAPIError, OSError) as e:
            self.engine.dispose()
            shown = self.engine.url.render_as_string(hide_password=True)
            reason = getattr(e, "orig", None) or e
            raise StoreUnavailable(
                f"cannot open the metadata store at {shown}: {str(reason).strip()}; "
                "check that it is running and reachable, and the path or URL in SHIPYARD_STORE_URL"
            ) from e
        self._dialect = self.engine.dialect.name
        self._postgres = self._dialect == "postgresql"
        self._insert_metrics_sql = insert_sql(self.engine.dialect)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def schema_revision(self) -> str | None:
        """Return the schema revision recorded in the store (``workspace info`` shows it)."""
        return current_revision(self.engine)

    # -- experiments ------------------------------------------------------------------------

    def get_or_create_experiment(self, name: str, created_ms: int) -> Experiment:
        """Return the experiment called ``name``, creating it if needed (race-safe)."""
        found = self._find_experiment(name)
        if found is not None:
            return found

        def _create(connection: sa.Connection) -> None:
            connection.execute(
                upsert_insert(self.engine, ExperimentRow).on_conflict_do_nothing(
                    index_elements=["name"]
                ),
                {"experiment_id": new_id(), "name": name, "created_ms": created_ms},
            )

        run_write(self.engine, _create)
        found = self._find_experiment(name)
        assert found is not None
        return found

    def get_experiment(self, name: str) -> Experiment:
        """Return the experiment called ``name``.

        Raises:
            ExperimentNotFound: No experiment has that name.
        """
        found = self._find_experiment(name)
        if found is None:
            raise ExperimentNotFound(
                f"no experiment named {name!r}; `shipyard experiments list` shows them"
            )
        return found

    def _find_experiment(self, name: str) -> Experiment | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(ExperimentRow).where(ExperimentRow.name == name)
            ).first()
        if row is None:
            return None
        return Experiment(row.experiment_id, row.name, row.created_ms, row.description)

    def list_experiments(self) -> list[Experiment]:
        """Return every experiment with its number of runs, oldest first."""
        query = (
            sa.select(ExperimentRow, sa.func.count(RunRow.run_id).label("run_count"))
            .outerjoin(RunRow, RunRow.experiment_id == ExperimentRow.experiment_id)
            .group_by(ExperimentRow.experiment_id)
            .order_by(ExperimentRow.created_ms, ExperimentRow.name)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            Experiment(r.experiment_id, r.name, r.created_ms, r.description, r.run_count)
            for r in rows
        ]

    # -- runs -------------------------------------------------------------------------------

    def create_run(
        self,
        values: Mapping[str, Any],
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Insert a run row with its first params and tags, in one transaction.

        ``values`` holds every non-nullable column of ``RunRow``. One transaction instead of
        three matters for runs started by the hundred (tuning trials, folds).
        """
        run_id = values["run_id"]

        def _create(connection: sa.Connection) -> None:
            connection.execute(sa.insert(RunRow), dict(values))
            if params:
                rows = [{"run_id": run_id, "key": k, "value": v} for k, v in params.items()]
                connection.execute(sa.insert(ParamRow), rows)
            if tags:
                rows = [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]
                connection.execute(sa.insert(TagRow), rows)

        run_write(self.engine, _create)

    def record_runs(
        self,
        runs: Sequence[Mapping[str, Any]],
        params: Sequence[tuple[str, str, str]],
        tags: Sequence[tuple[str, str, str]],
        metrics: Sequence[MetricTuple],
    ) -> None:
        """Insert ended runs with their params, tags and metrics, all in one transaction.

        ``runs`` holds every column of ``RunRow``; params and tags are (run_id, key, text).
        For runs recorded after the fact by the hundred (tuning trials): one round trip for
        all of them instead of several per run.
        """
        latest = latest_params(latest_by_key(metrics).values(), null_nan=self._postgres)
        stored = nan_as_null(metrics) if self._postgres else metrics

        def _record(connection: sa.Connection) -> None:
            connection.execute(sa.insert(RunRow), list(runs))
            for row_class, rows in ((ParamRow, params), (TagRow, tags)):
                if rows:
                    connection.execute(
                        sa.insert(row_class),
                        [{"run_id": r, "key": k, "value": v} for r, k, v in rows],
                    )
            if stored:
                self._write_metrics(connection, stored, latest)

        run_write(self.engine, _record)

    def end_run(
        self, run_id: str, status: RunStatus, end_ms: int, error: str | None, resources: Resources
    ) -> bool:
        """Mark a running run as ended; return False if it had already ended."""
        values = {
            "status": status.value,
            "end_ms": end_ms,
            "heartbeat_ms": end_ms,
            "error": error,
            "wall_seconds": resources.wall_seconds,
            "cpu_user_seconds": resources.cpu_user_seconds,
            "cpu_system_seconds": resources.cpu_system_seconds,
            "children_cpu_user_seconds": resources.children_cpu_user_seconds,
            "children_cpu_system_seconds": resources.children_cpu_system_seconds,
            "peak_rss_bytes": resources.peak_rss_bytes,
        }
        statement = (
            sa.update(RunRow)
            .where(RunRow.run_id == run_id, RunRow.status == RunStatus.RUNNING.value)
            .values(values)
        )
        result = run_write(self.engine, lambda c: c.execute(statement))
        return bool(result.rowcount)

    def heartbeat(self, run_ids: Sequence[str], now_ms: int) -> None:
        """Record that the processes owning these runs are alive."""
        if not run_ids:
            return
        statement = (
            sa.update(RunRow)
            .where(RunRow.run_id.in_(run_ids), RunRow.status == RunStatus.RUNNING.value)
            .values(heartbeat_ms=now_ms)
        )
        run_write(self.engine, lambda c: c.execute(statement))

    def running_runs(self) -> list[Run]:
        """Return every run still marked running (candidates for ``runs gc``)."""
        return self.search_runs(
            run_search.status_is(RunStatus.RUNNING), order_by=[], limit=None, experiments=None
        )

    def get_run(self, run_id: str) -> Run:
        """Return a run by id or by a unique id prefix of at least 6 characters.

        Raises:
            RunNotFound: No run, or more than one run, matches.
        """
        if len(run_id) < 6 or not all(c in "0123456789abcdef" for c in run_id):
            raise RunNotFound(f"{run_id!r} is not a run id (32 hex chars, or a prefix of 6+)")
        query = sa.select(RunRow.run_id).where(RunRow.run_id.startswith(run_id)).limit(2)
        with self.engine.connect() as connection:
            matches = connection.execute(query).scalars().all()
        if len(matches) != 1:
            what = "no run" if not matches else "more than one run"
            raise RunNotFound(f"{what} matches {run_id!r}; `shipyard runs list` shows run ids")
        return run_search.load_runs(self.engine, [matches[0]])[0]

    def get_runs(self, run_ids: Sequence[str]) -> list[Run]:
        """Return whole runs by exact id, in the order asked; unknown ids are left out."""
        return run_search.load_runs(self.engine, run_ids)

    def search_runs(
        self,
        where: Expr | None,
        *,
        experiments: Sequence[str] | None,
        order_by: Sequence[OrderKey],
        limit: int | None,
        offset: int = 0,
    ) -> list[Run]:
        """Return runs matching a parsed filter, in order, at most ``limit`` of them."""
        return run_search.search_runs(
            self.engine,
            where,
            experiments=experiments,
            order_by=order_by,
            limit=limit,
            offset=offset,
        )

    def _require_running(self, connection: sa.Connection, run_id: str) -> None:
        status = connection.execute(
            sa.select(RunRow.status).where(RunRow.run_id == run_id)
        ).scalar_one_or_none()
        if status is None:
            raise RunNotFound(f"no run {run_id!r}")
        if status != RunStatus.RUNNING.value:
            raise RunNotActive(f"run {run_id} has {status}; start a new run to log more")

    # -- params, tags, notes ----------------------------------------------------------------

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Record params; re-logging a param with the same value is a no-op.

        Raises:
            ParamConflict: A param already has a different value (params are write-once).
        """
        if not params:
            return

        def _log(connection: sa.Connection) -> None:
            self._require_running(connection, run_id)
            # dict(result) would treat the result as a mapping (it has .keys()): build it by row.
            existing = {
                row.key: row.value
                for row in connection.execute(
                    sa.select(ParamRow.key, ParamRow.value).where(
                        ParamRow.run_id == run_id, ParamRow.key.in_(list(params))
                    )
                )
            }
            clashes = {k: (existing[k], v) for k, v in params.items() if existing.get(k, v) != v}
            if clashes:
                described = ", ".join(
                    f"{k}: {old!r} then {new!r}" for k, (old, new) in clashes.items()
                )
                raise ParamConflict(
                    f"params are write-once and these were logged with different values: "
                    f"{described}; use a tag or a new run for values that change"
                )
            fresh = [
                {"run_id": run_id, "key": k, "value": v}
                for k, v in params.items()
                if k not in existing
            ]
            if fresh:
                connection.execute(sa.insert(ParamRow), fresh)

        run_write(self.engine, _log)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set tags, replacing earlier values (tags may change, unlike params)."""
        if not tags:
            return
        rows = [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]
        statement = upsert_insert(self.engine, TagRow)
        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "key"], set_={"value": statement.excluded.value}
        )

        def _set(connection: sa.Connection) -> None:
            self._require_known(connection, run_id)
            connection.execute(statement, rows)

        run_write(self.engine, _set)

    def add_note(self, run_id: str, author: str, text: str, created_ms: int) -> Note:
        """Attach a note to a run (finished runs too: notes are commentary, not results)."""
        note = Note(new_id(), run_id, author, text, created_ms)

        def _add(connection: sa.Connection) -> None:
            self._require_known(connection, run_id)
            connection.execute(
                sa.insert(NoteRow),
                {
                    "note_id": note.note_id,
                    "run_id": run_id,
                    "author": author,
                    "text": text,
                    "created_ms": created_ms,
                },
            )

        run_write(self.engine, _add)
        return note

    def list_notes(self, run_id: str) -> list[Note]:
        """Return a run's notes, oldest first."""
        query = sa.select(NoteRow).where(NoteRow.run_id == run_id).order_by(NoteRow.created_ms)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [Note(r.note_id, r.run_id, r.author, r.text, r.created_ms) for r in rows]

    def _require_known(self, connection: sa.Connection, run_id: str) -> None:
        found = connection.execute(sa.select(RunRow.run_id).where(RunRow.run_id == run_id))
        if found.first() is None:
            raise RunNotFound(f"no run {run_id!r}")

    # -- metrics ----------------------------------------------------------------------------

    def log_metrics(self, rows: Sequence[MetricTuple]) -> None:
        """Append metric values of any runs in one transaction and update each latest value.

        NaN values are stored as NULL (see the module docstring of ``models``). On PostgreSQL a
        big batch goes through COPY (``metric_rows``); either way the batch is all or nothing.
        """
        if not rows:
            return
        latest = latest_params(latest_by_key(rows).values(), null_nan=self._postgres)
        # SQLite stores a NaN as NULL by itself; PostgreSQL would keep it as NaN.
        stored = nan_as_null(rows) if self._postgres else rows
        run_write(self.engine, lambda c: self._write_metrics(c, stored, latest))

    def log_run_metrics(
        self,
        run_id: str,
        values: Sequence[Sequence[Any]],
        latest: Iterable[tuple[str, float, int, int]],
    ) -> None:
        """Append one run's checked ``(key, value, step, timestamp_ms)`` values in one transaction.

        ``latest`` is each key's latest value among them (``track.validation`` works it out
        while checking). On SQLite the caller's own tuples are bound as they are, under a
        statement that carries the run id, so no row is copied.
        """
        if not values:
            return
        params = latest_params(((run_id, *v) for v in latest), null_nan=self._postgres)
        if self._postgres:
            rows = nan_as_null([(run_id, *v) for v in values])
            run_write(self.engine, lambda c: self._write_metrics(c, rows, params))
            return
        statement = insert_for_run_sql(run_id)

        def _log(connection: sa.Connection) -> None:
            connection.exec_driver_sql(statement, values)
            upsert_latest(connection, params)

        run_write(self.engine, _log)

    def _write_metrics(
        self, connection: sa.Connection, rows: Sequence[StoredTuple], latest: list[dict[str, Any]]
    ) -> None:
        if self._postgres and len(rows) >= COPY_MIN_ROWS:
            copy_rows(connection, rows)
        else:
            connection.exec_driver_sql(self._insert_metrics_sql, rows)
        upsert_latest(connection, latest)

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Return every logged value of one metric of a run, by step then time."""
        query = (
            sa.select(MetricRow.key, MetricRow.value, MetricRow.step, MetricRow.timestamp_ms)
            .where(MetricRow.run_id == run_id, MetricRow.key == key)
            .order_by(MetricRow.step, MetricRow.timestamp_ms, MetricRow.metric_id)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            MetricPoint(r.key, math.nan if r.value is None else r.value, r.step, r.timestamp_ms)
            for r in rows
        ]

    def count_metrics(self, run_ids: Iterable[str] | None = None) -> int:
        """Count stored metric values, in all runs or in the given ones."""
        query = sa.select(sa.func.count()).select_from(MetricRow)
        if run_ids is not None:
            query = query.where(MetricRow.run_id.in_(list(run_ids)))
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    # -- artifacts --------------------------------------------------------------------------

    def add_artifact(self, artifact: Artifact) -> None:
        """Record a logical artifact name; logging the same name twice replaces the pointer."""
        statement = upsert_insert(self.engine, ArtifactRow)
        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "name"],
            set_={
                c: getattr(statement.excluded, c)
                for c in ("digest", "size_bytes", "media_type", "created_ms")
            },
        )

        def _add(connection: sa.Connection) -> None:
            self._require_running(connection, artifact.run_id)
            connection.execute(
                statement,
                {
                    "run_id": artifact.run_id,
                    "name": artifact.name,
                    "digest": artifact.digest,
                    "size_bytes": artifact.size_bytes,
                    "media_type": artifact.media_type,
                    "created_ms": artifact.created_ms,
                },
            )

        run_write(self.engine, _add)

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        """Return a run's artifacts by name."""
        query = (
            sa.select(ArtifactRow).where(ArtifactRow.run_id == run_id).order_by(ArtifactRow.name)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            Artifact(r.run_id, r.name, r.digest, r.size_bytes, r.media_type, r.created_ms)
            for r in rows
        ]
