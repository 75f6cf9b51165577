"""Request bodies in, response bodies out: the plain JSON endpoint and the Open Inference V2.

Everything here works on already-parsed JSON values and raises ``ContractError`` with field
names, so every malformed body becomes a precise 422 and nothing malformed reaches a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.serve.contract import MAX_ROWS, ContractError, Problem, records_to_columns

if TYPE_CHECKING:
    from shipyard.serve.host import Scored


def plain_columns(body: Any) -> dict[str, list[Any]]:
    """Columns from ``[{...}]``, ``{"records": [...]}``, ``{"columns": {...}}`` or ``{col: [..]}``.

    Raises:
        ContractError: The body has none of these shapes.
    """
    if isinstance(body, list):
        return records_to_columns(body)
    if not isinstance(body, dict):
        raise ContractError([Problem("body", "expected a JSON object or a list of records")])
    if "records" in body:
        records = body["records"]
        if not isinstance(records, list):
            raise ContractError([Problem("records", "expected a list of objects")])
        return records_to_columns(records)
    columns = body.get("columns", body)
    if not isinstance(columns, dict) or not columns:
        raise ContractError([Problem("columns", "expected an object of column -> list of values")])
    return dict(columns)


def plain_response(
    scored: Scored,
    *,
    model: str,
    version: int,
    variant: str,
    request_id: str,
    classes: list[Any] | None,
) -> dict[str, Any]:
    """The JSON answer of ``POST /models/{name}/predict``."""
    out: dict[str, Any] = {
        "model": model,
        "version": version,
        "variant": variant,
        "request_id": request_id,
        "predictions": scored.labels,
    }
    if scored.probabilities is not None and classes is not None:
        names = [str(c) for c in classes]
        out["probabilities"] = [dict(zip(names, row, strict=True)) for row in scored.probabilities]
    return out


def v2_columns(body: Any) -> tuple[dict[str, list[Any]], str | None]:
    """Columns (and the request id) from an Open Inference Protocol V2 infer request.

    Each input is one column: ``{"name", "shape": [n] or [n, 1], "datatype", "data": [...]}``.

    Raises:
        ContractError: Not a V2 request, or an input whose shape and data disagree.
    """
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise ContractError([Problem("inputs", "a V2 request needs a non-empty 'inputs' list")])
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ContractError([Problem("id", "must be a string")])
    columns: dict[str, list[Any]] = {}
    for index, tensor in enumerate(body["inputs"]):
        where = f"inputs[{index}]"
        if not isinstance(tensor, dict):
            raise ContractError([Problem(where, "expected an object")])
        name, shape, data = tensor.get("name"), tensor.get("shape"), tensor.get("data")
        if not isinstance(name, str) or not name:
            raise ContractError([Problem(f"{where}.name", "expected the feature's name")])
        if not isinstance(data, list):
            raise ContractError([Problem(f"{name}.data", "expected a list of values")])
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in shape
        ):
            raise ContractError([Problem(f"{name}.shape", "expected a list of integers")])
        if not isinstance(tensor.get("datatype"), str):
            raise ContractError(
                [Problem(f"{name}.datatype", "expected a V2 datatype such as FP64 or BYTES")]
            )
        if shape not in ([len(data)], [len(data), 1]):
            raise ContractError(
                [
                    Problem(
                        f"{name}.shape",
                        f"shape {shape} does not match {len(data)} values; use [n] or [n, 1]",
                    )
                ]
            )
        if len(data) > MAX_ROWS:
            raise ContractError([Problem(f"{name}.data", f"at most {MAX_ROWS} rows per request")])
        if name in columns:
            raise ContractError([Problem(name, "given twice")])
        columns[name] = data
    return columns, request_id


def label_datatype(classes: list[Any] | None) -> str:
    """The V2 datatype of a model's predictions: what its labels are, as the JSON answer shows.

    Integer classes are ``INT64`` (answered as ``0``/``1``, not ``"0"``), booleans ``BOOL``,
    text ``BYTES``; a regressor's values (no classes) ``FP64``.
    """
    if classes is None:
        return "FP64"
    if classes and all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "INT64"
    if classes and all(isinstance(c, int | float) and not isinstance(c, bool) for c in classes):
        return "FP64"
    return "BYTES"


def v2_response(
    scored: Scored, *, model: str, version: int, request_id: str, classes: list[Any] | None
) -> dict[str, Any]:
    """The V2 infer response: ``predict`` and, for classifiers, ``probabilities`` [n, k]."""
    n = len(scored.labels)
    outputs: list[dict[str, Any]] = [
        {
            "name": "predict",
            "shape": [n],
            "datatype": label_datatype(classes),
            "data": scored.labels,  # the values the JSON endpoint answers, of the same types
        }
    ]
    if scored.probabilities is not None and classes is not None:
        outputs.append(
            {
                "name": "probabilities",
                "shape": [n, len(classes)],
                "datatype": "FP64",
                "data": [p for row in scored.probabilities for p in row],
                "parameters": {"classes": [str(c) for c in classes]},
            }
        )
    return {
        "model_name": model,
        "model_version": str(version),
        "id": request_id,
        "outputs": outputs,
    }
