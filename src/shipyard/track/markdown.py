"""Comment bodies as safe HTML: Markdown with raw HTML off and only safe link targets.

Comments are stored raw and rendered here at display time, so the rules below apply to every
comment ever written. markdown-it-py's ``commonmark`` preset with ``html`` off escapes any HTML
in the text (``<script>`` shows as text); links and images keep only ``http``, ``https`` and
``mailto`` targets (and relative ones), so ``javascript:`` and ``data:`` URLs never reach an
``href``; links get ``rel="nofollow noopener noreferrer"``. Images are rendered as links: a
comment must not make the reader's browser fetch a URL by being shown.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.renderer import RendererHTML

__all__ = ["render_markdown"]

_SAFE_SCHEMES = frozenset({"http", "https", "mailto", ""})


def render_markdown(text: str) -> str:
    """Return ``text`` (Markdown) as sanitized HTML, safe to insert into a page."""
    html: str = _parser().render(text)
    return html


def _safe_url(url: str) -> bool:
    cleaned = "".join(ch for ch in url if ch > " " and ch != "\x7f").lower()
    try:
        scheme = urlsplit(cleaned).scheme
    except ValueError:
        return False
    return scheme in _SAFE_SCHEMES and not cleaned.startswith("//")


@cache
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.validateLink = _safe_url  # type: ignore[method-assign]
    renderer = cast("RendererHTML", md.renderer)
    default_link = renderer.rules.get("link_open")

    def link_open(self, tokens, idx, options, env):  # type: ignore[no-untyped-def]
        tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
        if default_link is not None:
            return default_link(tokens, idx, options, env)
        return renderer.renderToken(tokens, idx, options, env)

    def image(self, tokens, idx, options, env):  # type: ignore[no-untyped-def]
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        alt = renderer.renderInlineAsText(token.children or [], options, env)
        from markdown_it.common.utils import escapeHtml

        return (
            f'<a href="{escapeHtml(src)}" rel="nofollow noopener noreferrer">'
            f"{escapeHtml(alt or src)}</a>"
        )

    md.add_render_rule("link_open", link_open)
    md.add_render_rule("image", image)
    return md
