"""A model's input contract: compiled once from its manifest, enforced on every path.

HTTP serving (``shipyard.serve.contract``), batch scoring (``shipyard.serve.batch``) and the
Python API (``Bundle.predict``) read a model's input through one ``InputContract``, so a row
gets the same decision and the same message wherever it arrives (issue 14, item 5: the rules
used to be written three times, with three results). The rules, from the manifest:

- every feature column must be present; an HTTP body may name no other column (a typo there is
  a client bug), while a frame may carry other columns (ids, the target), which are not read;
- a value must be of its feature's kind: a number (never a boolean) for numeric features,
  true/false for boolean ones, text for string and category ones. Text is read as a number or
  a boolean only where ``InputPolicy.text_to_number`` / ``text_to_bool`` allow it;
- NaN is a missing value; a missing value in a ``nullable: false`` feature is refused;
- infinity is refused (``InputPolicy.infinity``);
- a category outside the training categories is refused under
  ``InputPolicy.unseen_categories: error`` and passed to the encoders under ``unknown``.

Two readers apply these rules. ``decode_columns`` walks JSON values cell by cell straight into
numpy arrays (the serving hot path builds no Polars series); ``check_frame`` does the same with
vectorized Polars expressions (batch chunks, Python frames). tests/unit/registry/
test_input_contract_agreement.py checks with Hypothesis that both give the same decisions and
messages. The result is a ``ModelInput``: a float64 matrix of the numeric and boolean
features and an object matrix of the text features, which the native and ONNX engines consume.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

from shipyard.core.errors import InvalidData

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from shipyard.registry.manifest import BundleManifest, InputPolicy

NUMERIC_TYPES = frozenset(
    {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64"}
)
# The decimal spellings ``text_to_number`` reads, the same on both readers (``[0-9]``, not
# ``\d``: Python and Rust disagree on which Unicode digits ``\d`` and ``float`` accept).
_NUMBER = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NUMBER_RE = re.compile(_NUMBER)
_TEXT_DTYPES = (pl.String, pl.Categorical, pl.Enum)

MISSING_COLUMN = "missing column; the model needs it"
UNKNOWN_COLUMN = "unknown column; the model does not take it"
NULL = "missing value, but the model was trained without missing values here (nullable: false)"
NOT_NUMBER = "expected a number"
NOT_BOOL = "expected true or false"
NOT_TEXT = "expected text"
INFINITY = "infinity is not a valid value"
UNSEEN = "a category never seen in training"

Kind = Literal["number", "bool", "text"]


@dataclass(frozen=True)
class Problem:
    """One reason an input cannot be scored: a field, what is wrong, and which rows."""

    field: str
    problem: str
    rows: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON shape of a 422 detail (at most ten rows listed)."""
        out: dict[str, Any] = {"field": self.field, "problem": self.problem}
        if self.rows:
            out["rows"] = list(self.rows[:10])
        return out

    def describe(self) -> str:
        """One line: ``field: problem (rows 1, 2)``."""
        shown = ", ".join(map(str, self.rows[:10])) + (", ..." if len(self.rows) > 10 else "")
        return f"{self.field}: {self.problem}" + (f" (rows {shown})" if self.rows else "")


class ContractViolation(InvalidData):
    """The input breaks the model's contract; ``problems`` says where (HTTP answers 422)."""

    code = "contract_violation"

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(
            "the input does not match the model's contract: "
            + "; ".join(p.describe() for p in problems)
            + ". Fix or drop these values, or see the model's inputs (GET /v2/models/{name})"
        )
        self.problems = list(problems)


RowProblems = list[tuple[int, list[tuple[str, str]]]]


def group_problems(rejected: RowProblems, order: Sequence[str]) -> list[Problem]:
    """Group per-row ``(field, message)`` pairs into one ``Problem`` per field and message."""
    rank = {name: i for i, name in enumerate(order)}
    rows: dict[tuple[str, str], list[int]] = {}
    for row, pairs in rejected:
        for pair in pairs:
            rows.setdefault(pair, []).append(row)
    keys = sorted(rows, key=lambda k: (rank.get(k[0], len(rank)), rows[k][0]))
    return [Problem(field, message, tuple(rows[(field, message)])) for field, message in keys]


def reasons(pairs: Iterable[tuple[str, str]]) -> str:
    """A row's reasons as one line (the batch reject file's ``reasons`` column)."""
    return "; ".join(f"{field}: {message}" for field, message in pairs)


@dataclass(frozen=True, eq=False)
class ModelInput:
    """Checked rows, decoded for a model: what every engine takes.

    Attributes:
        numbers: float64, one column per numeric or boolean feature (booleans as 0/1), NaN
            where missing.
        texts: object, one column per text feature: ``str`` or None where missing.
        number_names: The features behind ``numbers``' columns.
        text_names: The features behind ``texts``' columns.
    """

    numbers: np.ndarray[Any, Any]
    texts: np.ndarray[Any, Any]
    number_names: tuple[str, ...]
    text_names: tuple[str, ...]

    @property
    def height(self) -> int:
        """Number of rows."""
        return int(self.numbers.shape[0])

    @classmethod
    def concat(cls, parts: Sequence[ModelInput]) -> ModelInput:
        """Stack several requests' rows (the micro-batcher's batch)."""
        first = parts[0]
        if len(parts) == 1:
            return first
        return cls(
            np.concatenate([p.numbers for p in parts]),
            np.concatenate([p.texts for p in parts]),
            first.number_names,
            first.text_names,
        )

    def number(self, name: str) -> np.ndarray[Any, Any]:
        """The float64 column of a numeric or boolean feature."""
        return self.numbers[:, self.number_names.index(name)]

    def text(self, name: str) -> np.ndarray[Any, Any]:
        """The object column of a text feature (None where missing)."""
        return self.texts[:, self.text_names.index(name)]


@dataclass(frozen=True)
class _Field:
    name: str
    kind: Kind
    nullable: bool
    categories: frozenset[str] | None  # None: not checked (too many, or a lenient policy)
    slot: int


@dataclass(frozen=True, eq=False)
class FrameCheck:
    """What ``check_frame`` found: the typed rows, which are good, and why others are not.

    Attributes:
        typed: The feature columns read by the contract (Float64, Boolean or String), every
            row of the frame; cells of rejected rows may be null.
        good: Indices of the rows that passed.
        rejected: ``(row, [(field, message), ...])`` for each row that did not.
        inputs: The good rows as ``ModelInput``.
    """

    typed: pl.DataFrame
    good: np.ndarray[Any, Any]
    rejected: RowProblems
    inputs: ModelInput


class InputContract:
    """A manifest's features compiled into the checks and decoders every path uses."""

    def __init__(self, manifest: BundleManifest, policy: InputPolicy | None = None) -> None:
        self.manifest = manifest
        self.policy = policy if policy is not None else manifest.input_policy
        check_unseen = self.policy.unseen_categories == "error"
        fields: list[_Field] = []
        numbers: list[str] = []
        texts: list[str] = []
        for f in manifest.features:
            kind: Kind = (
                "number" if f.dtype in NUMERIC_TYPES else "bool" if f.dtype == "bool" else "text"
            )
            slots = texts if kind == "text" else numbers
            categories = None
            if kind == "text" and check_unseen and f.categories is not None:
                categories = frozenset(f.categories)
            fields.append(_Field(f.name, kind, f.nullable, categories, len(slots)))
            slots.append(f.name)
        self.fields: tuple[_Field, ...] = tuple(fields)
        self.names = [f.name for f in self.fields]
        self.number_names, self.text_names = tuple(numbers), tuple(texts)
        self._known = frozenset(self.names)

    def with_policy(self, **changes: Any) -> InputContract:
        """The same contract under a changed policy (a server's ``unseen_categories``)."""
        return InputContract(self.manifest, self.policy.model_copy(update=changes))

    def column_problems(self, names: Iterable[str], *, allow_extra: bool) -> list[Problem]:
        """Missing feature columns and, unless ``allow_extra``, columns the model does not take."""
        given = list(names)
        problems = [Problem(n, MISSING_COLUMN) for n in self.names if n not in given]
        if not allow_extra:
            problems += [Problem(n, UNKNOWN_COLUMN) for n in given if n not in self._known]
        return problems

    # -- the cell-by-cell reader: JSON values, the serving hot path --------------------------

    def decode_columns(self, columns: Mapping[str, Sequence[Any]]) -> ModelInput:
        """Check JSON ``columns`` (name -> equally long lists) and decode them for the model.

        Raises:
            ContractViolation: A column is missing or unknown, or some cells break the
                contract (every such cell is listed, by field, problem and rows).
        """
        problems = self.column_problems(columns, allow_extra=False)
        if problems:
            raise ContractViolation(problems)
        height = len(columns[self.names[0]])
        numbers = np.empty((height, len(self.number_names)), dtype=np.float64)
        texts = np.empty((height, len(self.text_names)), dtype=object)
        bad: dict[int, list[tuple[str, str]]] = {}
        text_to_number, text_to_bool = self.policy.text_to_number, self.policy.text_to_bool
        for f in self.fields:
            values = columns[f.name]
            if f.kind == "number" and self._plain_numbers(f, values, numbers, bad):
                continue
            target = texts if f.kind == "text" else numbers
            for row, value in enumerate(values):
                decoded, message = _cell(f, value, text_to_number, text_to_bool)
                target[row, f.slot] = decoded
                if message is not None:
                    bad.setdefault(row, []).append((f.name, message))
        if bad:
            raise ContractViolation(group_problems(sorted(bad.items()), self.names))
        return ModelInput(numbers, texts, self.number_names, self.text_names)

    @staticmethod
    def _plain_numbers(
        f: _Field,
        values: Sequence[Any],
        numbers: np.ndarray[Any, Any],
        bad: dict[int, list[tuple[str, str]]],
    ) -> bool:
        """The common case in one numpy call: every cell an int or float (not a bool)."""
        if not all(type(v) is float or type(v) is int for v in values):
            return False
        try:
            column = np.asarray(values, dtype=np.float64)
        except OverflowError:  # an integer beyond float64: the cell-by-cell reader says so
            return False
        infinite = np.isinf(column)
        if infinite.any():
            for row in np.flatnonzero(infinite).tolist():
                bad.setdefault(row, []).append((f.name, INFINITY))
            column[infinite] = math.nan
        if not f.nullable:
            for row in np.flatnonzero(np.isnan(column) & ~infinite).tolist():
                bad.setdefault(row, []).append((f.name, NULL))
        numbers[:, f.slot] = column
        return True

    # -- the vectorized reader: Polars frames (batch chunks, the Python API) -----------------

    def check_frame(self, frame: pl.DataFrame) -> FrameCheck:
        """Check every row of ``frame``; the good ones come back decoded, the rest with reasons.

        Columns other than the features are allowed and not read.

        Raises:
            ContractViolation: A feature column is missing (no row can be scored).
        """
        problems = self.column_problems(frame.columns, allow_extra=True)
        if problems:
            raise ContractViolation(problems)
        values: list[pl.Expr] = []
        checks: list[pl.Expr] = []
        for i, f in enumerate(self.fields):
            value, check = self._expressions(f, frame.schema[f.name])
            values.append(value.alias(f.name))
            checks.append(check.alias(f"\x00{i}"))
        checked = frame.select(*values, *checks)
        typed = checked.select(self.names)
        messages = checked.drop(self.names)
        failed = messages.select(pl.any_horizontal(pl.all().is_not_null())).to_series()
        failed_rows = np.flatnonzero(failed.fill_null(value=False).to_numpy())
        rejected: RowProblems = []
        if failed_rows.size:
            cells = messages[failed_rows].rows()
            for row, row_messages in zip(failed_rows.tolist(), cells, strict=True):
                pairs = [(n, m) for n, m in zip(self.names, row_messages, strict=True) if m]
                rejected.append((row, pairs))
        good = np.setdiff1d(np.arange(frame.height), failed_rows)
        rows = typed if not failed_rows.size else typed[good]
        return FrameCheck(typed, good, rejected, self._from_typed(rows))

    def decode_frame(self, frame: pl.DataFrame) -> ModelInput:
        """Check ``frame`` and decode it; any bad row refuses the whole frame (Python API).

        Raises:
            ContractViolation: A feature column is missing, or some cells break the contract.
        """
        result = self.check_frame(frame)
        if result.rejected:
            raise ContractViolation(group_problems(result.rejected, self.names))
        return result.inputs

    def _from_typed(self, typed: pl.DataFrame) -> ModelInput:
        height = typed.height
        numbers = (
            typed.select(pl.col(self.number_names).cast(pl.Float64)).to_numpy()
            if self.number_names
            else np.empty((height, 0), dtype=np.float64)
        )
        texts = np.empty((height, len(self.text_names)), dtype=object)
        for j, name in enumerate(self.text_names):
            texts[:, j] = typed.get_column(name).to_list()
        return ModelInput(
            np.ascontiguousarray(numbers, dtype=np.float64),
            texts,
            self.number_names,
            self.text_names,
        )

    def _expressions(self, f: _Field, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
        """The typed value and the problem message (null when fine) of one feature column."""
        column = pl.col(f.name)
        if dtype.is_float():
            column = column.fill_nan(None)  # NaN is a missing value, as in decode_columns
        if dtype == pl.Object:  # arbitrary Python values: read them as decode_columns does
            return self._python_values(f, frame_values=column)
        present = column.is_not_null()
        text = column.cast(pl.String)
        texty = isinstance(dtype, _TEXT_DTYPES)
        rules: list[tuple[pl.Expr, str]] = []
        if f.kind == "number":
            if dtype.is_numeric():
                value = column.cast(pl.Float64)
            elif texty and self.policy.text_to_number:
                spelled = text.str.contains(f"^{_NUMBER}$")
                value = pl.when(spelled).then(text.cast(pl.Float64, strict=False))
                rules.append((present & ~spelled, NOT_NUMBER))
            else:
                value = pl.lit(None, pl.Float64)
                rules.append((present, NOT_NUMBER))
            rules.append((value.is_infinite(), INFINITY))
        elif f.kind == "bool":
            if dtype == pl.Boolean:
                value = column
            elif texty and self.policy.text_to_bool:
                spelled = text.is_in(["true", "false"])
                value = pl.when(spelled).then(text == "true")
                rules.append((present & ~spelled, NOT_BOOL))
            else:
                value = pl.lit(None, pl.Boolean)
                rules.append((present, NOT_BOOL))
        else:
            value = text if texty else pl.lit(None, pl.String)
            if not texty:
                rules.append((present, NOT_TEXT))
            elif f.categories is not None:
                rules.append((present & ~text.is_in(sorted(f.categories)), UNSEEN))
        if not f.nullable:
            rules.insert(0, (~present, NULL))
        return value, _first_message(rules)

    def _python_values(self, f: _Field, frame_values: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        """Read an Object column cell by cell with the JSON reader's rules."""
        kind = {"number": pl.Float64, "bool": pl.Boolean, "text": pl.String}[f.kind]

        def decode(series: pl.Series) -> pl.Series:
            out = [
                _cell(f, v, self.policy.text_to_number, self.policy.text_to_bool)
                for v in series.to_list()
            ]
            if f.kind == "bool":
                cast = [None if m or math.isnan(v) else bool(v) for v, m in out]
            elif f.kind == "number":
                cast = [None if m or math.isnan(v) else v for v, m in out]
            else:
                cast = [None if m else v for v, m in out]
            return pl.struct(
                pl.Series("value", cast, dtype=kind),
                pl.Series("message", [m for _, m in out], dtype=pl.String),
                eager=True,
            )

        decoded = frame_values.map_batches(
            decode,
            return_dtype=pl.Struct({"value": kind, "message": pl.String}),
        )
        return decoded.struct.field("value"), decoded.struct.field("message")


def _first_message(rules: Sequence[tuple[pl.Expr, str]]) -> pl.Expr:
    if not rules:
        return pl.lit(None, pl.String)
    chain: Any = pl
    for condition, message in rules:
        chain = chain.when(condition.fill_null(value=False)).then(pl.lit(message))
    return chain.otherwise(pl.lit(None, pl.String)).cast(pl.String)  # type: ignore[no-any-return]


def _cell(
    f: _Field, value: Any, text_to_number: bool, text_to_bool: bool
) -> tuple[Any, str | None]:
    """One JSON value of feature ``f``: its decoded value and the problem, if any."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        missing = math.nan if f.kind != "text" else None
        return missing, None if f.nullable else NULL
    if f.kind == "number":
        if isinstance(value, bool):
            return math.nan, NOT_NUMBER
        if isinstance(value, int | float):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond float64
                return math.nan, INFINITY
        elif isinstance(value, str) and text_to_number and _NUMBER_RE.fullmatch(value):
            number = float(value)
        else:
            return math.nan, NOT_NUMBER
        return (math.nan, INFINITY) if math.isinf(number) else (number, None)
    if f.kind == "bool":
        if isinstance(value, bool):
            return float(value), None
        if isinstance(value, str) and text_to_bool and value in ("true", "false"):
            return float(value == "true"), None
        return math.nan, NOT_BOOL
    if not isinstance(value, str):
        return None, NOT_TEXT
    if f.categories is not None and value not in f.categories:
        return value, UNSEEN
    return value, None
