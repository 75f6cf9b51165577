"""Comment bodies rendered for display: no live markup from the XSS corpus, safe links kept."""

from __future__ import annotations

import pytest

from shipyard.track.comments import find_mentions
from shipyard.track.markdown import render_markdown
from tests.corpus import XSS_PAYLOADS, live_markup


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_no_payload_comes_out_live(payload: str) -> None:
    html = render_markdown(payload)
    assert live_markup(html) == [], html


def test_markdown_and_safe_links_survive() -> None:
    html = render_markdown("**bold** and [docs](https://example.com/a?b=1&c=2) `x<y`")
    assert "<strong>bold</strong>" in html
    assert 'href="https://example.com/a?b=1&amp;c=2"' in html
    assert 'rel="nofollow noopener noreferrer"' in html
    assert "<code>x&lt;y</code>" in html


def test_images_become_links_so_showing_a_comment_fetches_nothing() -> None:
    html = render_markdown("![chart](https://example.com/c.png)")
    assert "<img" not in html
    assert 'href="https://example.com/c.png"' in html


def test_mentions_are_found_once_each_and_not_in_mail_addresses() -> None:
    body = "@ana see this, @bob. cc @ana and mail me at x@example.com"
    assert find_mentions(body) == ["ana", "bob"]
