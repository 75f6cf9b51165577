"""Tests for the run filter language (shipyard.store.filters)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.core.errors import InvalidFilter
from shipyard.store.filters import (
    ATTRIBUTES,
    MAX_NESTING,
    STATUSES,
    And,
    Comparison,
    Expr,
    Field,
    Not,
    Or,
    OrderKey,
    parse_filter,
    parse_order_by,
)


def m(name: str) -> Field:
    return Field("metrics", name)


def p(name: str) -> Field:
    return Field("params", name)


def t(name: str) -> Field:
    return Field("tags", name)


def attr(name: str) -> Field:
    return Field("attributes", name)


A = Comparison(m("a"), "=", 1.0)
B = Comparison(m("b"), "=", 2.0)
C = Comparison(m("c"), "=", 3.0)


# --- the examples from the docs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "metrics.auc > 0.9 and params.model = 'lgbm'",
            And((Comparison(m("auc"), ">", 0.9), Comparison(p("model"), "=", "lgbm"))),
        ),
        (
            "(tags.team = \"risk\" or tags.team != 'ops') and status in ('finished', 'failed')",
            And(
                (
                    Or((Comparison(t("team"), "=", "risk"), Comparison(t("team"), "!=", "ops"))),
                    Comparison(attr("status"), "in", ("finished", "failed")),
                )
            ),
        ),
        (
            "params.lr >= 0.01 and not metrics.loss > 1e3",
            And((Comparison(p("lr"), ">=", 0.01), Not(Comparison(m("loss"), ">", 1000.0)))),
        ),
        (
            "name like 'cv-%' and metrics.`val loss` < 0.2",
            And((Comparison(attr("name"), "like", "cv-%"), Comparison(m("val loss"), "<", 0.2))),
        ),
        ("tags.owner is null", Comparison(t("owner"), "is null", None)),
        ("metrics.f1 is not null", Comparison(m("f1"), "is not null", None)),
    ],
)
def test_documented_examples(text: str, expected: Expr) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_filter_is_none(text: str) -> None:
    assert parse_filter(text) is None


# --- precedence, not, parentheses -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.a = 1 or metrics.b = 2 and metrics.c = 3", Or((A, And((B, C))))),
        ("metrics.a = 1 and metrics.b = 2 or metrics.c = 3", Or((And((A, B)), C))),
        ("(metrics.a = 1 or metrics.b = 2) and metrics.c = 3", And((Or((A, B)), C))),
        ("metrics.a = 1 and metrics.b = 2 and metrics.c = 3", And((A, B, C))),
        ("metrics.a = 1 or metrics.b = 2 or metrics.c = 3", Or((A, B, C))),
        ("(metrics.a = 1 and metrics.b = 2) and metrics.c = 3", And((And((A, B)), C))),
        ("not metrics.a = 1 and metrics.b = 2", And((Not(A), B))),
        ("not (metrics.a = 1 and metrics.b = 2)", Not(And((A, B)))),
        ("not not metrics.a = 1", Not(Not(A))),
        ("((metrics.a = 1))", A),
        ("metrics.a=1 and(metrics.b=2)", And((A, B))),
    ],
)
def test_precedence_and_grouping(text: str, expected: Expr) -> None:
    assert parse_filter(text) == expected


# --- fields: aliases, backticks, dotted keys ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("metrics.x", m("x")),
        ("metric.x", m("x")),
        ("m.x", m("x")),
        ("params.x", p("x")),
        ("param.x", p("x")),
        ("p.x", p("x")),
        ("tags.x", t("x")),
        ("tag.x", t("x")),
        ("t.x", t("x")),
        ("attributes.host", attr("host")),
        ("attr.host", attr("host")),
        ("a.host", attr("host")),
        ("host", attr("host")),
        ("HOST", attr("host")),
        ("Metrics.x", m("x")),
        ("metrics.fold.0.auc", m("fold.0.auc")),
        ("metrics.val-loss/ep_1", m("val-loss/ep_1")),
        ("metrics.0", m("0")),
        ("metrics.`val loss`", m("val loss")),
        ("metrics.`a\\`b\\\\c`", m("a`b\\c")),
        ("params.`and`", p("and")),
        ("attributes.`status`", attr("status")),
    ],
)
def test_fields(text: str, field: Field) -> None:
    assert parse_order_by(text) == OrderKey(field, False)
    value = "1" if field.kind == "metrics" else "'running'" if field.name == "status" else "'v'"
    assert parse_filter(f"{text} = {value}") == Comparison(
        field, "=", 1.0 if field.kind == "metrics" else value.strip("'")
    )


@pytest.mark.parametrize("name", ATTRIBUTES)
def test_every_attribute_is_accepted(name: str) -> None:
    assert parse_filter(f"{name} is null") == Comparison(attr(name), "is null", None)


# --- keywords, operators, values ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.a = 1 AND metrics.b = 2", And((A, B))),
        ("metrics.a = 1 Or NOT metrics.b = 2", Or((A, Not(B)))),
        ("name LIKE 'x%'", Comparison(attr("name"), "like", "x%")),
        ("name ILike 'x%'", Comparison(attr("name"), "ilike", "x%")),
        ("status IN ('running')", Comparison(attr("status"), "in", ("running",))),
        ("status Not In ('killed')", Comparison(attr("status"), "not in", ("killed",))),
        ("tags.x IS NOT NULL", Comparison(t("x"), "is not null", None)),
        ("tags.x Is Null", Comparison(t("x"), "is null", None)),
        ("params.flag = TRUE", Comparison(p("flag"), "=", True)),
        ("tags.flag != false", Comparison(t("flag"), "!=", False)),
        ("metrics.a == 1", A),
        ("metrics.a <> 1", Comparison(m("a"), "!=", 1.0)),
        ("metrics.a <= 1", Comparison(m("a"), "<=", 1.0)),
        ("metrics.a>=1", Comparison(m("a"), ">=", 1.0)),
        ("metrics.a<-1", Comparison(m("a"), "<", -1.0)),
        ("metrics.a > +2.5", Comparison(m("a"), ">", 2.5)),
        ("metrics.a > .5", Comparison(m("a"), ">", 0.5)),
        ("metrics.a > 1.", Comparison(m("a"), ">", 1.0)),
        ("metrics.a > 1E-3", Comparison(m("a"), ">", 0.001)),
        ("metrics.a in (1, 2.5, -3)", Comparison(m("a"), "in", (1.0, 2.5, -3.0))),
        ("params.lr = 0.01", Comparison(p("lr"), "=", 0.01)),
        ("params.n > 10", Comparison(p("n"), ">", 10.0)),
        ("params.x in ('a', 1)", Comparison(p("x"), "in", ("a", 1.0))),
        ("params.x < 'b'", Comparison(p("x"), "<", "b")),
        ("start_time > 1700000000000", Comparison(attr("start_time"), ">", 1.7e12)),
        ("end_time is null", Comparison(attr("end_time"), "is null", None)),
        ("status = 'FAILED'", Comparison(attr("status"), "=", "failed")),
        ("status like 'fin%'", Comparison(attr("status"), "like", "fin%")),
        ("experiment = 'churn'", Comparison(attr("experiment"), "=", "churn")),
        ("params.s = 'it\\'s'", Comparison(p("s"), "=", "it's")),
        ('params.s = "say \\"hi\\""', Comparison(p("s"), "=", 'say "hi"')),
        ('params.s = "it\'s"', Comparison(p("s"), "=", "it's")),
        ("params.s = 'a\\\\b'", Comparison(p("s"), "=", "a\\b")),
        ("params.s like '50\\%'", Comparison(p("s"), "like", "50\\%")),
        ("params.s = ''", Comparison(p("s"), "=", "")),
        # attribute names used as keys get no attribute type rules
        ("params.end_time = 'x'", Comparison(p("end_time"), "=", "x")),
        ("tags.start_time like 'x%'", Comparison(t("start_time"), "like", "x%")),
        ("params.status = 'done'", Comparison(p("status"), "=", "done")),
        ("tags.status > 'a'", Comparison(t("status"), ">", "a")),
    ],
)
def test_keywords_operators_and_values(text: str, expected: Expr) -> None:
    assert parse_filter(text) == expected


def test_numbers_are_floats() -> None:
    expr = parse_filter("params.n = 3")
    assert isinstance(expr, Comparison)
    assert isinstance(expr.value, float)
    assert not isinstance(expr.value, bool)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "match"),
    [
        # unterminated strings and names
        ("params.x = 'abc", r"unterminated string: found \"'abc\" at position 11"),
        ('params.x = "abc\\"', r"unterminated string.*position 11"),
        ("metrics.`val loss < 1", r"unterminated backtick-quoted name.*position 8"),
        # unknown operators
        ("metrics.a =~ 1", r"unknown operator: found '=~' at position 10; expected one of ="),
        ("metrics.a gt 1", r"unknown operator: found 'gt' at position 10"),
        ("metrics.a => 1", r"unknown operator: found '=>'"),
        ("metrics.a ! 1", r"unknown operator: found '!'"),
        ("metrics.a not like 'x'", r"expected 'in' after 'not': found 'like' at position 14"),
        ("tags.a is nul", r"expected null after 'is': found 'nul' at position 10"),
        ("tags.a", r"missing operator after tags.a: found end of input at position 6"),
        # trailing garbage and unbalanced parentheses
        ("metrics.a > 1 foo", r"unexpected text: found 'foo' at position 14; expected 'and', 'or'"),
        ("metrics.a > 1)", r"unexpected text: found '\)' at position 13"),
        ("(metrics.a > 1", r"unclosed '\(' at position 0: found end of input at position 14"),
        ("metrics.a > 1 and", r"expected a field: found end of input at position 17"),
        ("and metrics.a > 1", r"expected a field: found 'and' at position 0"),
        # empty parentheses and lists
        ("()", r"empty parentheses: found '\)' at position 1"),
        ("metrics.a = 1 and ( )", r"empty parentheses: found '\)' at position 20"),
        ("metrics.a in ()", r"empty list: found '\)' at position 14"),
        ("metrics.a in 1", r"missing list after 'in': found '1' at position 13"),
        ("metrics.a in (1,)", r"missing value after ','.*position 16"),
        ("metrics.a in (1 2)", r"unterminated list: found '2' at position 16"),
        ("params.a in (true)", r"true/false cannot appear in a list: found 'true'"),
        # missing or malformed values
        ("metrics.auc >", r"missing value after '>' at position 12: found end of input"),
        ("metrics.auc > and metrics.b = 1", r"unquoted text value: found 'and' at position 14"),
        ("params.model = lgbm", r"unquoted text value: found 'lgbm' at position 15"),
        ("metrics.a > nan", r"nan and inf are not accepted: found 'nan' at position 12"),
        ("metrics.a > INF", r"nan and inf are not accepted"),
        ("metrics.a > 1e999", r"number out of range: found '1e999' at position 12"),
        ("metrics.a > 1.2.3", r"malformed number: found '1.2.3' at position 12"),
        ("metrics.a > 1abc", r"malformed number: found '1abc'"),
        ("tags.a = null", r"null is not a value.*'is null'"),
        ("metrics.a > @", r"unexpected character: found '@' at position 12"),
        ("metrics.a > -x", r"unexpected character: found '-' at position 12"),
        # unknown fields
        ("metricz.auc > 1", r"unknown field prefix 'metricz': found 'metricz.auc' at position 0"),
        ("auc > 0.5", r"unknown attribute 'auc'.*run_id, name, status, experiment, start_time"),
        ("attributes.duration > 1", r"unknown attribute 'duration'.*parent_run_id, host"),
        ("metrics. auc > 1", r"missing key name after 'metrics\.': found 'auc' at position 9"),
        ("metrics.``  > 1", r"empty backtick-quoted name.*position 8"),
        ("`auc` > 1", r"expected a field: found '`auc`' at position 0"),
        # type rules
        ("metrics.auc = 'high'", r"metrics.auc compares only with numbers: found \"'high'\""),
        ("metrics.auc = true", r"metrics.auc compares only with numbers: found 'true'"),
        ("metrics.auc in (1, 'x')", r"compares only with numbers: found \"'x'\" at position 19"),
        ("metrics.auc like '0.9%'", r"like works only on params, tags and text attributes"),
        ("start_time ilike '1%'", r"ilike works only on params, tags and text attributes"),
        ("start_time > '2024-01-01'", r"start_time compares only with numbers.*epoch millisec"),
        ("params.x like 1", r"like needs a quoted pattern: found '1' at position 14"),
        ("params.x > true", r"true/false cannot be used with >"),
        ("name = 3", r"name compares only with strings: found '3' at position 7"),
        ("status = 'done'", r"unknown status: found \"'done'\".*running, finished, failed, killed"),
        ("status in ('running', 'ok')", r"unknown status: found \"'ok'\" at position 22"),
        ("status > 'running'", r"status cannot be ordered: found '>' at position 7"),
    ],
)
def test_errors(text: str, match: str) -> None:
    with pytest.raises(InvalidFilter, match=match):
        parse_filter(text)


def test_invalid_filter_is_a_value_error_with_code() -> None:
    with pytest.raises(ValueError, match="unknown attribute") as info:
        parse_filter("nope = 1")
    assert isinstance(info.value, InvalidFilter)
    assert info.value.code == "invalid_filter"


def test_long_error_tokens_are_shortened() -> None:
    with pytest.raises(InvalidFilter, match=r"unterminated string: found \"'x{36}\.\.\.\"") as info:
        parse_filter("params.a = '" + "x" * 500)
    assert len(str(info.value)) < 200


# --- abuse guards ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "(" * 5000,
        "(" * 4000 + "metrics.a = 1" + ")" * 4000,
        "not " * 2000 + "metrics.a = 1",
        "(not " * 1500 + "metrics.a = 1",
    ],
)
def test_deep_nesting_is_refused(text: str) -> None:
    with pytest.raises(InvalidFilter, match=f"nesting deeper than {MAX_NESTING} levels"):
        parse_filter(text)


def test_nesting_up_to_the_limit_is_fine() -> None:
    text = "(" * MAX_NESTING + "metrics.a = 1" + ")" * MAX_NESTING
    assert parse_filter(text) == A
    assert parse_filter("not " * MAX_NESTING + "metrics.a = 1") is not None
    with pytest.raises(InvalidFilter, match="nesting"):
        parse_filter("(" + text + ")")


def test_long_texts_are_refused() -> None:
    ok = "metrics.a = 1" + " " * (10_000 - 13)
    assert parse_filter(ok) == A
    with pytest.raises(InvalidFilter, match="10001 characters long; expected at most 10000"):
        parse_filter(ok + " ")
    with pytest.raises(InvalidFilter, match="characters long"):
        parse_order_by("x" * 20_000)


# --- order by --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.auc desc", OrderKey(m("auc"), True)),
        ("metrics.auc DESC", OrderKey(m("auc"), True)),
        ("start_time", OrderKey(attr("start_time"), False)),
        ("params.lr ASC", OrderKey(p("lr"), False)),
        ("  tags.team asc  ", OrderKey(t("team"), False)),
        ("m.`val loss` desc", OrderKey(m("val loss"), True)),
    ],
)
def test_order_by(text: str, expected: OrderKey) -> None:
    assert parse_order_by(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"empty sort key"),
        ("metrics.auc up", r"unexpected text: found 'up' at position 12; expected 'asc', 'desc'"),
        ("metrics.auc desc asc", r"unexpected text: found 'asc' at position 17"),
        ("duration desc", r"unknown attribute 'duration'"),
        ("metricz.auc", r"unknown field prefix 'metricz'"),
        ("metrics.auc, start_time", r"unexpected text: found ','"),
    ],
)
def test_order_by_errors(text: str, match: str) -> None:
    with pytest.raises(InvalidFilter, match=match):
        parse_order_by(text)


# --- round trip: random ASTs -> text -> AST --------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_.\-/]+")


def _quote(text: str, quote: str) -> str:
    return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def render_field(field: Field) -> str:
    if field.kind == "attributes":
        return field.name
    key = field.name if _BARE_KEY.fullmatch(field.name) else _quote(field.name, "`")
    return f"{field.kind}.{key}"


def render_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _quote(value, "'")
    assert isinstance(value, tuple)
    return "(" + ", ".join(render_value(v) for v in value) + ")"


def render(expr: Expr, upper: bool = False) -> str:
    def kw(word: str) -> str:
        return word.upper() if upper else word

    def child(item: Expr) -> str:
        text = render(item, upper)
        return f"({text})" if isinstance(item, And | Or) else text

    if isinstance(expr, Comparison):
        field = render_field(expr.field)
        if expr.value is None:
            return f"{field} {kw(expr.op)}"
        return f"{field} {kw(expr.op)} {render_value(expr.value)}"
    if isinstance(expr, Not):
        return f"{kw('not')} {child(expr.item)}"
    joiner = f" {kw('and')} " if isinstance(expr, And) else f" {kw('or')} "
    return joiner.join(child(item) for item in expr.items)


numbers = st.floats(allow_nan=False, allow_infinity=False)
strings = st.text(max_size=12)
keys = st.one_of(st.from_regex(r"[A-Za-z0-9_.\-/]{1,12}", fullmatch=True), st.text(min_size=1))
ordering = st.sampled_from(["<", "<=", ">", ">="])
equality = st.sampled_from(["=", "!="])
nulls = st.sampled_from(["is null", "is not null"])
lists = st.sampled_from(["in", "not in"])
likes = st.sampled_from(["like", "ilike"])


def _cmp(
    fields: st.SearchStrategy[Field],
    ops: st.SearchStrategy[str],
    values: st.SearchStrategy[object],
) -> st.SearchStrategy[Comparison]:
    return st.builds(Comparison, fields, ops, values)


def _tuples(items: st.SearchStrategy[object]) -> st.SearchStrategy[tuple[object, ...]]:
    return st.lists(items, min_size=1, max_size=4).map(tuple)


def _comparisons() -> st.SearchStrategy[Comparison]:
    metric = st.builds(Field, st.just("metrics"), keys)
    data = st.builds(Field, st.sampled_from(["params", "tags"]), keys)
    times = st.sampled_from([attr("start_time"), attr("end_time")])
    status = st.just(attr("status"))
    texts = st.sampled_from(
        [attr(n) for n in ATTRIBUTES if n not in ("status", "start_time", "end_time")]
    )
    data_scalar = st.one_of(strings, numbers)
    return st.one_of(
        _cmp(st.one_of(metric, times), st.one_of(equality, ordering), numbers),
        _cmp(st.one_of(metric, times), lists, _tuples(numbers)),
        _cmp(st.one_of(metric, times, data, status, texts), nulls, st.none()),
        _cmp(data, equality, st.one_of(data_scalar, st.booleans())),
        _cmp(data, ordering, data_scalar),
        _cmp(st.one_of(data, texts, status), likes, strings),
        _cmp(data, lists, _tuples(data_scalar)),
        _cmp(status, equality, st.sampled_from(STATUSES)),
        _cmp(status, lists, _tuples(st.sampled_from(STATUSES))),
        _cmp(texts, st.one_of(equality, ordering), strings),
        _cmp(texts, lists, _tuples(strings)),
    )


exprs: st.SearchStrategy[Expr] = st.recursive(
    _comparisons(),
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=4).map(lambda xs: And(tuple(xs))),
        st.lists(children, min_size=2, max_size=4).map(lambda xs: Or(tuple(xs))),
        children.map(Not),
    ),
    max_leaves=12,
)


@settings(database=None, max_examples=300)
@given(expr=exprs, upper=st.booleans())
def test_round_trip(expr: Expr, upper: bool) -> None:
    assert parse_filter(render(expr, upper)) == expr


@settings(database=None)
@given(field=st.one_of(_comparisons().map(lambda c: c.field)), descending=st.booleans())
def test_order_by_round_trip(field: Field, descending: bool) -> None:
    text = render_field(field) + (" desc" if descending else " asc")
    assert parse_order_by(text) == OrderKey(field, descending)


# --- fuzz: anything in, a tree or InvalidFilter out ------------------------------------------

_PIECES = [
    "metrics.auc", "params.lr", "tags.team", "status", "name", "m.`x y`", "and", "or", "not",
    "in", "like", "is", "null", "true", "(", ")", ",", "=", "!=", "<>", "<", ">=", "'a'",
    '"b"', "'unterminated", "1", "-2.5e3", "nan", "'finished'", "`", ".", "metricz.x",
]  # fmt: skip


def _parse_or_invalid(text: str) -> None:
    try:
        result = parse_filter(text)
    except InvalidFilter:
        return  # the one error a caller ever has to handle
    assert result is None or isinstance(result, Comparison | And | Or | Not)


@settings(database=None, max_examples=300)
@given(st.text(max_size=200))
def test_fuzz_any_text(text: str) -> None:
    _parse_or_invalid(text)


@settings(database=None, max_examples=300)
@given(st.lists(st.sampled_from(_PIECES), max_size=30), st.sampled_from([" ", ""]))
def test_fuzz_token_soup(pieces: list[str], sep: str) -> None:
    _parse_or_invalid(sep.join(pieces))


@settings(database=None)
@given(st.text(alphabet="(not )metrics.a=1'\"`\\", max_size=400))
def test_fuzz_nesting_alphabet(text: str) -> None:
    _parse_or_invalid(text)
