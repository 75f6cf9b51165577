"""The request side of a model's input contract: JSON columns in, decoded model input out.

The rules themselves live in ``shipyard.registry.input_contract`` (one contract for HTTP,
batch scoring and the Python API, with the same messages); this module adds what only a
request has: columns that must be lists of one length, an empty body, a row limit. A bad
request is a ``ContractError`` (422) naming the field and rows, never a 500 from deep inside
scikit-learn, and nothing on this path builds a Polars series: JSON values are decoded cell by
cell straight into the numpy arrays the engines take.
"""

from __future__ import annotations

from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from shipyard.registry.input_contract import ContractViolation, ModelInput, Problem

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from shipyard.registry.input_contract import InputContract

MAX_ROWS = 10_000
_NUMBER_TYPES = frozenset((int, float))
UnseenPolicy = Literal["error", "unknown"]
ContractError = ContractViolation  # the name the HTTP layer has always caught

__all__ = [
    "MAX_ROWS",
    "ContractError",
    "Problem",
    "RequestContract",
    "UnseenPolicy",
    "records_to_columns",
]


class RequestContract:
    """A served model's compiled contract, with the server's ``unseen_categories`` applied."""

    def __init__(self, contract: InputContract, *, unseen: UnseenPolicy | None = None) -> None:
        if unseen is not None and unseen != contract.policy.unseen_categories:
            contract = contract.with_policy(unseen_categories=unseen)
        self.contract = contract
        self.names = contract.names
        # The fast reader applies when every feature is a number (see ``plain_records``).
        self._numeric_only = bool(contract.fields) and all(
            f.kind == "number" for f in contract.fields
        )
        self._order = tuple(contract.number_names)
        # A record's values in that order, as a tuple (itemgetter of one name gives a scalar).
        names = self._order
        self._pick: Callable[[dict[str, Any]], tuple[Any, ...]] = (
            itemgetter(*names) if len(names) > 1 else (lambda record: (record[names[0]],))
        )

    def plain_records(self, records: Any) -> ModelInput | None:
        """Decode well-formed numeric records in one numpy call, or None to take the full check.

        The serving hot path (issue 17): a list of objects that name exactly the model's
        features, every value a finite JSON number, for a model whose features are all
        numeric. Such rows pass every rule of the contract, so the answer is the one
        ``frame`` gives; anything else (a missing or extra key, a null, text, a boolean, an
        integer beyond float64) returns None and the caller runs ``records_to_columns`` and
        ``frame``, which name the problem precisely.
        """
        if not self._numeric_only or type(records) is not list or not records:
            return None
        if len(records) > MAX_ROWS:
            return None
        width, pick = len(self._order), self._pick
        try:
            rows = [
                pick(record) for record in records if type(record) is dict and len(record) == width
            ]
        except KeyError:
            return None
        if len(rows) != len(records):
            return None
        # Only JSON numbers (a boolean is not one; neither is text that numpy would parse).
        if not set(map(type, chain.from_iterable(rows))) <= _NUMBER_TYPES:
            return None
        try:
            numbers = np.array(rows, dtype=np.float64)
        except OverflowError:  # an integer beyond float64: the full check says so
            return None
        # orjson never yields NaN or infinity, but a caller's Python values may.
        if not np.isfinite(numbers).all():
            return None
        texts = np.empty((numbers.shape[0], 0), dtype=object)
        return ModelInput(numbers, texts, self.contract.number_names, self.contract.text_names)

    def frame(self, columns: Mapping[str, Any]) -> ModelInput:
        """Check request ``columns`` (name -> list of values) and decode them for the model.

        Raises:
            ContractError: Missing, unknown or mistyped columns, missing values where the
                manifest says ``nullable: false``, infinity, unseen categories (under the
                ``error`` policy), ragged, empty or oversized input.
        """
        problems = self.contract.column_problems(columns, allow_extra=False)
        lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
        if -1 in lengths:
            problems.append(Problem("inputs", "every column must be a list of values"))
        elif len(lengths) > 1:
            problems.append(Problem("inputs", f"columns have different lengths: {sorted(lengths)}"))
        elif lengths and max(lengths) > MAX_ROWS:
            problems.append(Problem("inputs", f"at most {MAX_ROWS} rows per request"))
        elif lengths == {0}:
            problems.append(Problem("inputs", "no rows to score"))
        if problems:
            raise ContractError(problems)
        return self.contract.decode_columns(columns)


def records_to_columns(records: Sequence[Any]) -> dict[str, list[Any]]:
    """Turn ``[{col: val}, ...]`` into ``{col: [vals]}``; a key missing in a row is null.

    Raises:
        ContractError: A record is not an object, or there are too many rows.
    """
    if len(records) == 1 and type(records[0]) is dict:  # the common one-row request
        return {name: [value] for name, value in records[0].items()}
    if not records:
        raise ContractError([Problem("inputs", "no rows to score")])
    if len(records) > MAX_ROWS:
        raise ContractError([Problem("inputs", f"at most {MAX_ROWS} rows per request")])
    bad = tuple(i for i, r in enumerate(records) if not isinstance(r, dict))
    if bad:
        raise ContractError([Problem("inputs", "every record must be an object", bad)])
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    return {n: [r.get(n) for r in records] for n in names}
