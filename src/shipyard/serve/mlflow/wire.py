"""MLflow's JSON on the wire: reading requests, writing Shipyard's records in MLflow's shapes.

The MLflow client speaks proto3 JSON: 64-bit integers (timestamps, steps) arrive as strings,
a metric value may be ``"NaN"`` or ``"Infinity"``, and a GET carries its fields in the query
string. ``Fields`` reads all of these with one set of checks, so a malformed body is a 400
naming the field, never a 500. Ids map one to one: a Shipyard run id (32 hex characters) is
the MLflow ``run_id``; an experiment's id is its Shipyard id, as a string, and MLflow's
default experiment ``"0"`` is Shipyard's ``default``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from shipyard.serve.mlflow.errors import invalid
from shipyard.store.entities import RunStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shipyard.store.entities import Experiment, MetricPoint, Run
    from shipyard.store.registry_records import ModelVersion

DEFAULT_EXPERIMENT_ID = "0"
_SPECIAL = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf, "inf": math.inf}
_STATUS_OUT = {
    RunStatus.RUNNING: "RUNNING",
    RunStatus.FINISHED: "FINISHED",
    RunStatus.FAILED: "FAILED",
    RunStatus.KILLED: "KILLED",
}
STATUS_IN = {
    "RUNNING": RunStatus.RUNNING,
    "SCHEDULED": RunStatus.RUNNING,
    "FINISHED": RunStatus.FINISHED,
    "FAILED": RunStatus.FAILED,
    "KILLED": RunStatus.KILLED,
}


class Fields:
    """One request's fields (JSON body or query string), read with precise 400s."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            raise invalid("the request body must be a JSON object")
        self._raw: dict[str, Any] = raw

    def get(self, name: str) -> Any:
        """The raw value of ``name``, or None."""
        return self._raw.get(name)

    def text(self, name: str, *, default: str | None = None) -> str:
        """A required string field (``default`` makes it optional)."""
        value = self._raw.get(name)
        if value is None or value == "":
            if default is not None:
                return default
            raise invalid(f"missing value for required parameter '{name}'")
        if not isinstance(value, str):
            raise invalid(f"parameter '{name}' must be a string, got {type(value).__name__}")
        return value

    def optional_text(self, name: str) -> str | None:
        """A string field that may be absent."""
        if self._raw.get(name) in (None, ""):
            return None
        return self.text(name)

    def integer(self, name: str, *, default: int | None = None) -> int:
        """An int64 field, as a JSON number or a decimal string."""
        value = self._raw.get(name)
        if value is None or value == "":
            if default is not None:
                return default
            raise invalid(f"missing value for required parameter '{name}'")
        return to_int(value, name)

    def number(self, name: str) -> float:
        """A double field: a JSON number or ``"NaN"``/``"Infinity"``/``"-Infinity"``."""
        value = self._raw.get(name)
        if value is None:
            raise invalid(f"missing value for required parameter '{name}'")
        return to_float(value, name)

    def objects(self, name: str) -> list[Fields]:
        """A list of JSON objects (absent: empty)."""
        value = self._raw.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise invalid(f"parameter '{name}' must be a list")
        return [Fields(item) for item in value]

    def strings(self, name: str) -> list[str]:
        """A list of strings; a single string (a repeated query parameter seen once) counts."""
        value = self._raw.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid(f"parameter '{name}' must be a list of strings")
        return list(value)


def to_int(value: object, name: str) -> int:
    """``value`` as an int (proto3 JSON sends int64 as a string)."""
    if isinstance(value, bool):
        raise invalid(f"parameter '{name}' must be an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise invalid(f"parameter '{name}' must be an integer, got {str(value)[:40]!r}")


def to_float(value: object, name: str) -> float:
    """``value`` as a float; NaN and infinities come as strings in proto3 JSON."""
    if isinstance(value, bool):
        raise invalid(f"parameter '{name}' must be a number, got a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        special = _SPECIAL.get(value.strip().lower())
        if special is not None:
            return special
        try:
            return float(value)
        except ValueError:
            pass
    raise invalid(f"parameter '{name}' must be a number, got {str(value)[:40]!r}")


def number_out(value: float) -> float | str:
    """A double as proto3 JSON writes it (NaN and infinities as strings)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def experiment_json(experiment: Experiment, *, default_id: str | None) -> dict[str, Any]:
    """An experiment as MLflow's ``Experiment`` message."""
    experiment_id = (
        DEFAULT_EXPERIMENT_ID
        if experiment.experiment_id == default_id
        else experiment.experiment_id
    )
    out: dict[str, Any] = {
        "experiment_id": experiment_id,
        "name": experiment.name,
        "artifact_location": f"mlflow-artifacts:/{experiment_id}",
        "lifecycle_stage": "active",
        "creation_time": experiment.created_ms,
        "last_update_time": experiment.created_ms,
        "tags": [],
    }
    if experiment.description:
        out["tags"] = [{"key": "mlflow.note.content", "value": experiment.description}]
    return out


def run_json(
    run: Run,
    latest: Mapping[str, tuple[float, int, int]],
    *,
    experiment_id: str,
) -> dict[str, Any]:
    """A run as MLflow's ``Run`` message; ``latest`` holds each metric's (value, step, time)."""
    artifact_uri = f"mlflow-artifacts:/{experiment_id}/{run.run_id}/artifacts"
    info = {
        "run_id": run.run_id,
        "run_uuid": run.run_id,
        "run_name": run.name,
        "experiment_id": experiment_id,
        "user_id": run.user,
        "status": _STATUS_OUT[run.status],
        "start_time": run.start_ms,
        "artifact_uri": artifact_uri,
        "lifecycle_stage": "active",
    }
    if run.end_ms is not None:
        info["end_time"] = run.end_ms
    metrics = []
    for key, value in run.metrics.items():
        _, step, timestamp = latest.get(key, (value, 0, run.start_ms))
        metrics.append(
            {"key": key, "value": number_out(value), "timestamp": timestamp, "step": step}
        )
    return {
        "info": info,
        "data": {
            "metrics": metrics,
            "params": [{"key": k, "value": v} for k, v in run.params.items()],
            "tags": [{"key": k, "value": v} for k, v in run.tags.items()],
        },
        "inputs": {},
    }


def metric_json(point: MetricPoint) -> dict[str, Any]:
    """One logged value as MLflow's ``Metric`` message."""
    return {
        "key": point.key,
        "value": number_out(point.value),
        "timestamp": point.timestamp_ms,
        "step": point.step,
    }


def version_json(version: ModelVersion, aliases: list[str]) -> dict[str, Any]:
    """A registry version as MLflow's ``ModelVersion`` message."""
    lineage = version.lineage
    out: dict[str, Any] = {
        "name": version.name,
        "version": str(version.version),
        "creation_timestamp": version.created_ms,
        "last_updated_timestamp": version.created_ms,
        "user_id": version.created_by,
        "current_stage": "None",
        "source": str(lineage.get("mlflow_source") or f"shipyard:{version.ref}"),
        "status": "READY",
        "aliases": aliases,
        "tags": [{"key": k, "value": v} for k, v in (lineage.get("mlflow_tags") or {}).items()],
    }
    if version.run_id:
        out["run_id"] = version.run_id
    if version.description:
        out["description"] = version.description
    return out
