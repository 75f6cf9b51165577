"""The artifact proxy of the MLflow API (``/api/2.0/mlflow-artifacts/artifacts/...``).

A run's ``artifact_uri`` is ``mlflow-artifacts:/<experiment_id>/<run_id>/artifacts``, so the
client uploads, lists and downloads through these routes on the tracking server itself. The
path names the run and a logical artifact name; the name is checked by the one artifact-name
grammar (``store.artifacts.validate_artifact_name``: no ``..``, no ``%``, no backslashes,
never decoded twice), the content goes to Shipyard's content-addressed blob store and the run
points its name at the blob, exactly as ``run.log_artifact`` does. Nothing here ever builds a
filesystem path from a request.
"""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import RunNotActive
from shipyard.serve.mlflow.errors import MlflowError, invalid
from shipyard.store import run_edits
from shipyard.store.artifacts import validate_artifact_name
from shipyard.store.entities import Artifact, RunStatus

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.track.workspace import Workspace

_HEX = frozenset("0123456789abcdef")


def split_path(path: str, *, name_required: bool) -> tuple[str, str]:
    """``<experiment_id>/<run_id>/artifacts[/<name>]`` -> (run id, name or "").

    Raises:
        MlflowError: The path does not name a run's artifacts, or the name is not allowed.
    """
    # Never stripped when a name is wanted: "a/" must be refused, not stored as "a".
    parts = (path if name_required else path.rstrip("/")).split("/", 3)
    if len(parts) < 3 or parts[2] != "artifacts":
        raise invalid(
            f"artifact path {path[:100]!r} must be <experiment_id>/<run_id>/artifacts/<name>"
        )
    run_id = parts[1]
    if len(run_id) != 32 or not set(run_id) <= _HEX:
        raise MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"run {run_id[:64]!r} not found")
    name = parts[3] if len(parts) == 4 else ""
    if name or name_required:
        validate_artifact_name(name)
    return run_id, name


class ArtifactService:
    """Upload, list and download of run artifacts in the workspace's blob store."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def upload(self, path: str, file: Path) -> dict[str, Any]:
        """Store the uploaded file as artifact ``name`` of the run (the run must be running)."""
        run_id, name = split_path(path, name_required=True)
        state = run_edits.run_state(self.workspace.store.engine, run_id)
        if state is None:
            raise MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"run {run_id!r} not found")
        if state != RunStatus.RUNNING.value:  # checked before the blob is stored, and again
            raise RunNotActive(f"run {run_id} has {state}; start a new run to log more")
        info = self.workspace.blobs.put_file(file, scratch=True)
        guessed, _ = mimetypes.guess_type(name)
        self.workspace.store.add_artifact(
            Artifact(
                run_id,
                name,
                info.digest,
                info.size_bytes,
                guessed or "application/octet-stream",
                self.workspace.clock.now_ms(),
            )
        )
        return {}

    def download(self, path: str) -> bytes:
        """The content of one artifact, checked against its digest."""
        run_id, name = split_path(path, name_required=True)
        for artifact in self.workspace.store.list_artifacts(run_id):
            if artifact.name == name:
                return self.workspace.blobs.get_bytes(artifact.digest)
        raise MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"run {run_id} has no artifact {name!r}")

    def list(self, path: str) -> dict[str, Any]:
        """The files and folders directly under ``path`` (names relative to it)."""
        if not path:
            return {"files": []}
        run_id, folder = split_path(path, name_required=False)
        prefix = f"{folder}/" if folder else ""
        files: dict[str, dict[str, Any]] = {}
        for artifact in self.workspace.store.list_artifacts(run_id):
            if not artifact.name.startswith(prefix):
                continue
            rest = artifact.name[len(prefix) :]
            head, sep, _ = rest.partition("/")
            if sep:
                files.setdefault(head, {"path": head, "is_dir": True})
            else:
                files[head] = {"path": head, "is_dir": False, "file_size": artifact.size_bytes}
        return {"files": [files[k] for k in sorted(files)]}
