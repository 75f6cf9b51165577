r"""The run filter language: turn a user's search text into a small, typed AST.

Users search runs with expressions such as::

    metrics.auc > 0.9 and params.model = 'lgbm'
    (tags.team = "risk" or tags.team != 'ops') and status in ('finished', 'failed')
    params.lr >= 0.01 and not metrics.loss > 1e3
    name like 'cv-%' and metrics.`val loss` < 0.2
    tags.owner is null

This module only parses and type-checks; turning the AST into SQL is the store's job.

Grammar (EBNF). Keywords, field prefixes and attribute names are case-insensitive; whitespace
separates tokens; ``or`` binds looser than ``and``, and ``not`` binds tighter than both::

    filter     = [ or_expr ] ;
    or_expr    = and_expr { "or" and_expr } ;
    and_expr   = not_expr { "and" not_expr } ;
    not_expr   = "not" not_expr | primary ;
    primary    = "(" or_expr ")" | comparison ;
    comparison = field ( cmp_op scalar
                       | ( "like" | "ilike" ) string
                       | [ "not" ] "in" "(" item { "," item } ")"
                       | "is" [ "not" ] "null" ) ;
    cmp_op     = "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=" ;
    field      = prefix "." key | attribute ;
    prefix     = "metrics" | "metric" | "m" | "params" | "param" | "p"
               | "tags" | "tag" | "t" | "attributes" | "attr" | "a" ;
    key        = keychar { keychar } | "`" { char } "`" ;
    keychar    = letter | digit | "_" | "." | "-" | "/" ;
    attribute  = "run_id" | "name" | "status" | "experiment" | "start_time" | "end_time"
               | "parent_run_id" | "host" ;
    scalar     = string | number | "true" | "false" ;
    item       = string | number ;
    string     = "'" { char } "'" | '"' { char } '"' ;
    number     = [ "+" | "-" ] ( digits [ "." [ digits ] ] | "." digits )
                 [ ( "e" | "E" ) [ "+" | "-" ] digits ] ;
    order_by   = field [ "asc" | "desc" ] ;

Inside quotes and backticks a backslash escapes the closing quote and the backslash itself; any
other backslash is kept as written (so ``'50\%'`` reaches a ``like`` as ``50\%``). Keys may
contain dots: ``metrics.fold.0.auc`` is the metric ``fold.0.auc``. Bare ``nan`` and ``inf`` are
not numbers here. Every number becomes a ``float``.

Type rules:

* metrics, ``start_time`` and ``end_time`` (epoch milliseconds) compare only with numbers;
* ``like``/``ilike`` take a quoted pattern and apply to params, tags and text attributes only;
* ``status`` takes ``=``, ``!=``, ``in``, ``not in``, ``like``, ``ilike``, ``is [not] null``, and
  its values must be one of ``running, finished, failed, killed`` (normalised to lower case);
* other attributes compare with quoted strings;
* params and tags are stored as strings, but a number compared with one is kept as a ``float``
  in the AST (and ``true``/``false`` as a ``bool``, with ``=``/``!=`` only): the SQL layer
  decides how to compare them.

Every error is an :class:`~shipyard.core.errors.InvalidFilter` naming the offending text, its
0-based character position and what was expected. Texts over 10,000 characters and nesting
deeper than 100 levels are refused, so parsing never hits Python's recursion limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from shipyard.core.errors import InvalidFilter
from shipyard.store.filter_tokens import OPS_TEXT, Token, token_error, tokenize

FieldKind: TypeAlias = Literal["metrics", "params", "tags", "attributes"]
Op: TypeAlias = Literal[
    "=", "!=", "<", "<=", ">", ">=", "like", "ilike", "in", "not in", "is null", "is not null"
]
Value: TypeAlias = str | float | bool | tuple[str | float, ...] | None

MAX_FILTER_LENGTH = 10_000
MAX_NESTING = 100
ATTRIBUTES = (
    "run_id",
    "name",
    "status",
    "experiment",
    "start_time",
    "end_time",
    "parent_run_id",
    "host",
)
STATUSES = ("running", "finished", "failed", "killed")


@dataclass(frozen=True, slots=True)
class Field:
    """A field of a run: a metric, param or tag key, or one of the fixed attributes."""

    kind: FieldKind
    name: str


@dataclass(frozen=True, slots=True)
class Comparison:
    """``field op value``; ``value`` is a tuple for ``in``/``not in`` and None for ``is null``."""

    field: Field
    op: Op
    value: Value


@dataclass(frozen=True, slots=True)
class And:
    """All of ``items`` hold (at least two items)."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Any of ``items`` holds (at least two items)."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """``item`` does not hold."""

    item: Expr


Expr: TypeAlias = Comparison | And | Or | Not


@dataclass(frozen=True, slots=True)
class OrderKey:
    """Sort runs by ``field``, ascending unless ``descending``."""

    field: Field
    descending: bool


_PREFIXES: dict[str, FieldKind] = {
    **dict.fromkeys(("metrics", "metric", "m"), "metrics"),
    **dict.fromkeys(("params", "param", "p"), "params"),
    **dict.fromkeys(("tags", "tag", "t"), "tags"),
    **dict.fromkeys(("attributes", "attr", "a"), "attributes"),
}
_ORDERING: tuple[Op, ...] = ("<", "<=", ">", ">=")
_CMP_OPS: dict[str, Op] = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", **{o: o for o in _ORDERING}}
_NUMERIC = frozenset({Field("attributes", "start_time"), Field("attributes", "end_time")})
_RESERVED = frozenset({"and", "or", "not", "in", "is", "like", "ilike", "null", "true", "false"})
_VALUE_TEXT = "a quoted string, a number, true or false"


def _describe(field: Field) -> str:
    return field.name if field.kind == "attributes" else f"{field.kind}.{field.name}"


def _check_op(field: Field, op: Op, tok: Token) -> None:
    if op in ("like", "ilike") and (field.kind == "metrics" or field in _NUMERIC):
        raise token_error(
            tok,
            f"{op} works only on params, tags and text attributes, not {_describe(field)}",
            "=, !=, <, <=, >, >=, in, not in or is [not] null for a number field",
        )
    if field == Field("attributes", "status") and op in _ORDERING:
        raise token_error(
            tok,
            "status cannot be ordered",
            "=, !=, in, not in, like, ilike, is null or is not null",
        )


def _check_value(field: Field, op: Op, value: str | float | bool, tok: Token) -> str | float | bool:
    """Enforce the type rules for one value (or one list item); return it, possibly normalised."""
    desc = _describe(field)
    if op in ("like", "ilike"):
        if not isinstance(value, str):
            raise token_error(tok, f"{op} needs a quoted pattern", "a quoted string such as 'cv-%'")
        return value
    if field.kind == "metrics" or field in _NUMERIC:
        if isinstance(value, bool) or not isinstance(value, float):
            example = "epoch milliseconds such as 1700000000000" if field in _NUMERIC else "0.9"
            raise token_error(tok, f"{desc} compares only with numbers", f"a number ({example})")
        return value
    if field.kind == "attributes":
        if not isinstance(value, str):
            raise token_error(
                tok, f"{desc} compares only with strings", "a quoted string such as 'abc'"
            )
        if field.name == "status":
            if value.lower() not in STATUSES:
                raise token_error(tok, "unknown status", f"one of {', '.join(STATUSES)}")
            return value.lower()
        return value
    if isinstance(value, bool) and op not in ("=", "!="):
        raise token_error(tok, f"true/false cannot be used with {op}", "= or != with true/false")
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text) > MAX_FILTER_LENGTH:
            raise InvalidFilter(
                f"filter is {len(text)} characters long; expected at most {MAX_FILTER_LENGTH}"
            )
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def next(self) -> Token:
        tok = self.tokens[self.index]
        if tok.kind != "end":
            self.index += 1
        return tok

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise token_error(
                tok, f"nesting deeper than {MAX_NESTING} levels", "a simpler expression"
            )

    def expect_end(self, expected: str) -> None:
        tok = self.peek()
        if tok.kind != "end":
            raise token_error(tok, "unexpected text", expected)

    def or_expr(self) -> Expr:
        items = [self.and_expr()]
        while self.peek().keyword() == "or":
            self.next()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Expr:
        items = [self.not_expr()]
        while self.peek().keyword() == "and":
            self.next()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Expr:
        tok = self.peek()
        if tok.keyword() != "not":
            return self.primary()
        self.next()
        self.enter(tok)
        item = self.not_expr()
        self.depth -= 1
        return Not(item)

    def primary(self) -> Expr:
        tok = self.peek()
        if tok.kind != "(":
            return self.comparison()
        self.next()
        self.enter(tok)
        if self.peek().kind == ")":
            raise token_error(self.peek(), "empty parentheses", "an expression inside ( )")
        expr = self.or_expr()
        close = self.next()
        if close.kind != ")":
            raise token_error(close, f"unclosed '(' at position {tok.pos}", "')', 'and' or 'or'")
        self.depth -= 1
        return expr

    def field(self) -> Field:
        tok = self.next()
        expected = "a field such as metrics.auc, params.lr, tags.team or status"
        if tok.kind != "word" or tok.keyword() in _RESERVED:
            raise token_error(tok, "expected a field", expected)
        prefix, dot, key = tok.text.partition(".")
        if not dot:
            return self.attribute(prefix, tok)
        kind = _PREFIXES.get(prefix.lower())
        if kind is None:
            raise token_error(
                tok,
                f"unknown field prefix {prefix!r}",
                "metrics., params., tags. or attributes. (or metric./m., param./p., tag./t., "
                "attr./a.)",
            )
        if not key:
            quoted = self.peek()
            if quoted.kind != "backtick" or quoted.pos != tok.pos + len(tok.text):
                raise token_error(
                    quoted, f"missing key name after {tok.text!r}", "a key such as auc"
                )
            self.next()
            key = str(quoted.value)
            if not key:
                raise token_error(quoted, "empty backtick-quoted name", "a non-empty name")
        return self.attribute(key, tok) if kind == "attributes" else Field(kind, key)

    def attribute(self, name: str, tok: Token) -> Field:
        if name.lower() not in ATTRIBUTES:
            raise token_error(
                tok,
                f"unknown attribute {name!r}",
                f"one of {', '.join(ATTRIBUTES)} (or metrics.KEY, params.KEY, tags.KEY)",
            )
        return Field("attributes", name.lower())

    def scalar(self, after: Token) -> tuple[str | float | bool, Token]:
        tok = self.next()
        if tok.kind in ("string", "number"):
            return tok.value, tok
        word = tok.keyword()
        if word in ("true", "false"):
            return word == "true", tok
        if word in ("nan", "inf", "infinity"):
            raise token_error(tok, "nan and inf are not accepted", "a finite number")
        if word == "null":
            raise token_error(
                tok, "null is not a value", "'is null' or 'is not null' to test for null"
            )
        if tok.kind == "word":
            raise token_error(tok, "unquoted text value", f"{_VALUE_TEXT} (quote text as '...')")
        where = f"missing value after {after.shown()} at position {after.pos}"
        raise token_error(tok, where, _VALUE_TEXT)

    def items(self, after: Token) -> list[tuple[str | float, Token]]:
        tok = self.next()
        if tok.kind != "(":
            raise token_error(
                tok, f"missing list after {after.shown()}", "a list such as ('a', 'b')"
            )
        if self.peek().kind == ")":
            raise token_error(self.peek(), "empty list", "at least one value inside ( )")
        items: list[tuple[str | float, Token]] = []
        while True:
            value, value_tok = self.scalar(tok)
            if isinstance(value, bool):
                raise token_error(
                    value_tok, "true/false cannot appear in a list", "strings or numbers"
                )
            items.append((value, value_tok))
            tok = self.next()
            if tok.kind == ")":
                return items
            if tok.kind != ",":
                raise token_error(tok, "unterminated list", "',' or ')'")

    def comparison(self) -> Comparison:
        field = self.field()
        op_tok = self.next()
        word = op_tok.keyword()
        op: Op
        if op_tok.kind == "op":
            op = _CMP_OPS[op_tok.text]
        elif word in ("like", "ilike", "in"):
            op = "like" if word == "like" else "ilike" if word == "ilike" else "in"
        elif word == "not":
            tok = self.next()
            if tok.keyword() != "in":
                raise token_error(tok, "expected 'in' after 'not'", "not in ('a', 'b')")
            op = "not in"
        elif word == "is":
            tok = self.next()
            negated = tok.keyword() == "not"
            if negated:
                tok = self.next()
            if tok.keyword() != "null":
                raise token_error(tok, "expected null after 'is'", "is null or is not null")
            op = "is not null" if negated else "is null"
        else:
            desc = _describe(field)
            problem = (
                f"missing operator after {desc}" if op_tok.kind == "end" else "unknown operator"
            )
            raise token_error(op_tok, problem, f"one of {OPS_TEXT}")
        _check_op(field, op, op_tok)
        value: Value = None
        if op in ("in", "not in"):
            checked = [_check_value(field, op, v, t) for v, t in self.items(op_tok)]
            value = tuple(v for v in checked if not isinstance(v, bool))  # lists hold no bools
        elif op not in ("is null", "is not null"):
            raw, value_tok = self.scalar(op_tok)
            value = _check_value(field, op, raw, value_tok)
        return Comparison(field, op, value)


def parse_filter(text: str) -> Expr | None:
    """Parse a run filter expression.

    Args:
        text: The filter as the user wrote it, e.g. ``"metrics.auc > 0.9 and status = 'failed'"``.

    Returns:
        The expression tree, or None when ``text`` is empty or only whitespace.

    Raises:
        InvalidFilter: The text does not parse or breaks a type rule (see the module docstring).
    """
    parser = _Parser(text)
    if parser.peek().kind == "end":
        return None
    expr = parser.or_expr()
    parser.expect_end("'and', 'or' or end of input")
    return expr


def parse_order_by(text: str) -> OrderKey:
    """Parse one sort key such as ``"metrics.auc desc"``, ``"start_time"`` or ``"params.lr ASC"``.

    Args:
        text: A field, optionally followed by ``asc`` or ``desc`` (any case).

    Returns:
        The sort key; ascending unless ``desc`` is given.

    Raises:
        InvalidFilter: The text is empty, names an unknown field or has extra text.
    """
    parser = _Parser(text)
    if parser.peek().kind == "end":
        raise token_error(parser.peek(), "empty sort key", "a field such as metrics.auc desc")
    field = parser.field()
    direction = parser.peek().keyword()
    if direction in ("asc", "desc"):
        parser.next()
    parser.expect_end("'asc', 'desc' or end of input")
    return OrderKey(field, direction == "desc")
