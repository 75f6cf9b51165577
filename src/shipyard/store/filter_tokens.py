"""Tokens of the run filter language (see ``shipyard.store.filters`` for the grammar).

The tokenizer knows values (quoted strings with backslash escapes, backtick names, finite
numbers), words, punctuation and operators, and refuses anything else with the character
position, so the parser only ever sees well-formed tokens.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, TypeAlias

from shipyard.core.errors import InvalidFilter

#: Comparison operators as they may be written.
CMP_OPS = frozenset({"=", "==", "!=", "<>", "<", "<=", ">", ">="})
OPS_TEXT = "=, !=, <, <=, >, >=, like, ilike, in, not in, is null or is not null"

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.+\-]*")
_OPERATOR = re.compile(r"[=!<>~^&|*%]+")

TokKind: TypeAlias = Literal["word", "string", "number", "op", "(", ")", ",", "backtick", "end"]
_PUNCTUATION: dict[str, TokKind] = {"(": "(", ")": ")", ",": ","}


@dataclass(frozen=True, slots=True)
class Token:
    """One token and where it starts in the text."""

    kind: TokKind
    text: str  # exactly as written in the source
    pos: int
    value: str | float = ""  # decoded string, backtick name or number

    def shown(self) -> str:
        """The token as an error message quotes it."""
        if self.kind == "end":
            return "end of input"
        return repr(self.text if len(self.text) <= 40 else self.text[:37] + "...")

    def keyword(self) -> str:
        """The lower-cased word, or "" for other kinds of token."""
        return self.text.lower() if self.kind == "word" else ""


def token_error(tok: Token, problem: str, expected: str) -> InvalidFilter:
    """Build the error that names the problem, the token, its position and what was expected."""
    return InvalidFilter(
        f"{problem}: found {tok.shown()} at position {tok.pos}; expected {expected}"
    )


def read_quoted(text: str, start: int) -> tuple[str, int]:
    """Decode the quoted token starting at ``text[start]``; return its value and end index."""
    quote, i = text[start], start + 1
    out: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(nxt if nxt in (quote, "\\") else ch + nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    what = "backtick-quoted name" if quote == "`" else "string"
    raise token_error(
        Token("string", text[start:], start),
        f"unterminated {what}",
        f"a closing {quote} (escape a {quote} inside it as \\{quote})",
    )


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``end`` token.

    Raises:
        InvalidFilter: An unterminated string, a malformed number or an unknown operator.
    """
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            tokens.append(Token(_PUNCTUATION[ch], ch, i))
            i += 1
        elif ch in "'\"`":
            value, end = read_quoted(text, i)
            tokens.append(Token("backtick" if ch == "`" else "string", text[i:end], i, value))
            i = end
        elif m := _WORD.match(text, i):
            tokens.append(Token("word", m.group(), i))
            i = m.end()
        elif m := _NUMBER.match(text, i):
            tail = _NUMBER_TAIL.match(text, m.end())
            if tail is not None and tail.group():
                raise token_error(
                    Token("number", text[i : tail.end()], i),
                    "malformed number",
                    "a number such as 42, -0.5 or 1e-3 followed by a space or operator",
                )
            number = float(m.group())
            if not math.isfinite(number):
                raise token_error(
                    Token("number", m.group(), i), "number out of range", "a finite number"
                )
            tokens.append(Token("number", m.group(), i, number))
            i = m.end()
        elif m := _OPERATOR.match(text, i):
            if m.group() not in CMP_OPS:
                raise token_error(
                    Token("op", m.group(), i), "unknown operator", f"one of {OPS_TEXT}"
                )
            tokens.append(Token("op", m.group(), i))
            i = m.end()
        else:
            raise token_error(
                Token("op", ch, i),
                "unexpected character",
                "a field, value, operator or parenthesis",
            )
    tokens.append(Token("end", "", len(text)))
    return tokens
