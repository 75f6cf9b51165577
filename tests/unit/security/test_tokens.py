"""Token text, ids and hashes."""

from __future__ import annotations

import base64

import pytest

from shipyard.core.errors import InvalidArgument
from shipyard.security.tokens import matches, new_token, token_id_of, token_sha256


def test_tokens_carry_256_random_bits_and_a_public_id() -> None:
    tokens = [new_token() for _ in range(50)]
    assert len({t.text for t in tokens}) == 50
    token = tokens[0]
    prefix, token_id, secret = token.text.split("_", 2)
    assert prefix == "sy"
    assert token_id == token.token_id
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert token_id_of(token.text) == token.token_id


def test_only_the_hash_is_kept_and_it_matches() -> None:
    token = new_token()
    assert token.sha256 == token_sha256(token.text) != token.text
    assert token.text not in token.sha256
    assert matches(token.text, token.sha256)
    assert not matches(token.text[:-1] + ("A" if token.text[-1] != "A" else "B"), token.sha256)


@pytest.mark.parametrize(
    "text",
    ["", "Bearer x", "sy_", "sy_zzzzzzzzzzzz_" + "a" * 43, "sy_0123456789ab_" + "a" * 42, "\x00"],
)
def test_malformed_tokens_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(InvalidArgument, match="malformed token") as caught:
        token_id_of(text)
    assert len(text) < 8 or text not in str(caught.value)
