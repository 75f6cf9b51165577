"""Turn what users pass to ``log_artifact`` (a path, bytes, a data frame) into stored blobs."""

from __future__ import annotations

import io
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.errors import InvalidArgument
from shipyard.store.artifacts import validate_artifact_name

PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


@dataclass(frozen=True, slots=True)
class Payload:
    """One blob to store under a logical name: either in memory or a file to stream."""

    name: str
    media_type: str
    data: bytes | None = None
    path: Path | None = None


def payloads_for(obj: Any, name: str | None) -> list[Payload]:
    """Return the blobs that logging ``obj`` under ``name`` means.

    A file becomes one blob (named after the file unless ``name`` is given); a directory
    becomes one blob per file beneath it, under ``name/``; bytes need a name; a Polars or
    pandas frame becomes Parquet.

    Raises:
        InvalidArgument: Unsupported object, missing name, or a directory holding a symlink.
        InvalidName: The name would escape the artifact namespace.
    """
    if isinstance(obj, bytes | bytearray | memoryview):
        if name is None:
            raise InvalidArgument("logging bytes needs a name, e.g. name='weights.bin'")
        return [Payload(validate_artifact_name(name), _media_type(name), data=bytes(obj))]
    if isinstance(obj, str | os.PathLike):
        return _path_payloads(Path(obj), name)
    frame_bytes = _frame_to_parquet(obj)
    if frame_bytes is not None:
        name = name or "frame.parquet"
        return [Payload(validate_artifact_name(name), PARQUET_MEDIA_TYPE, data=frame_bytes)]
    raise InvalidArgument(
        f"cannot log a {type(obj).__name__} as an artifact: pass a path, bytes, "
        "or a Polars/pandas DataFrame"
    )


def _path_payloads(path: Path, name: str | None) -> list[Payload]:
    if path.is_symlink():
        raise InvalidArgument(f"{path} is a symlink; log the file it points to instead")
    if path.is_file():
        logical = validate_artifact_name(name or path.name)
        return [Payload(logical, _media_type(path.name), path=path)]
    if path.is_dir():
        prefix = validate_artifact_name(name or path.name)
        payloads = []
        for file in sorted(path.rglob("*")):
            if file.is_symlink():
                raise InvalidArgument(
                    f"{file} is a symlink; Shipyard does not follow links out of a logged folder"
                )
            if file.is_file():
                relative = file.relative_to(path).as_posix()
                logical = validate_artifact_name(f"{prefix}/{relative}")
                payloads.append(Payload(logical, _media_type(file.name), path=file))
        return payloads
    raise InvalidArgument(f"{path} does not exist (or is not a regular file or folder)")


def _frame_to_parquet(obj: Any) -> bytes | None:
    module = type(obj).__module__.split(".")[0]
    buffer = io.BytesIO()
    if module == "polars":
        import polars as pl

        if isinstance(obj, pl.LazyFrame):
            obj = obj.collect()
        if isinstance(obj, pl.DataFrame):
            obj.write_parquet(buffer)
            return buffer.getvalue()
    if module == "pandas" and type(obj).__name__ == "DataFrame":
        obj.to_parquet(buffer)
        return buffer.getvalue()
    return None


def _media_type(name: str) -> str:
    if name.endswith(".parquet"):
        return PARQUET_MEDIA_TYPE
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"
