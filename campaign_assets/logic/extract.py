"""What a competitor page says: title, description, headings, main claims.

Parsed with selectolax (the Lexbor engine): a small self-contained wheel, a
forgiving HTML5 parser and CSS selectors, and fast enough to parse a 2 MB
page in milliseconds. lxml would do the same with a larger binary and a
stricter parser; trafilatura finds "the article" of a page, which a product
or pricing page does not have, and pulls in many dependencies. Pure functions.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from selectolax.lexbor import LexborHTMLParser as HTMLParser

MAX_HEADINGS = 12
MAX_CLAIMS = 8
_NOISE = "script, style, noscript, template, svg, nav, footer, header nav, form, iframe"
_SENTENCE = re.compile(r"(.+?[.!?])(?:\s|$)")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Extract:
    title: str
    description: str
    headings: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(node: Any) -> str:
    return _SPACE.sub(" ", node.text(separator=" ") or "").strip() if node is not None else ""


def _meta(tree: HTMLParser, *selectors: str) -> str:
    for sel in selectors:
        node = tree.css_first(sel)
        if node is not None and (node.attributes.get("content") or "").strip():
            return _SPACE.sub(" ", node.attributes["content"]).strip()
    return ""


def first_sentence(text: str) -> str:
    match = _SENTENCE.match(text)
    return (match.group(1) if match else text).strip()


def extract(html: str) -> Extract:
    tree = HTMLParser(html)
    title = _text(tree.css_first("title")) or _meta(tree, 'meta[property="og:title"]') or _text(tree.css_first("h1"))
    description = _meta(tree, 'meta[name="description"]', 'meta[name="Description"]', 'meta[property="og:description"]')
    for node in tree.css(_NOISE):
        node.decompose()
    root = tree.css_first("main") or tree.css_first("article") or tree.body or tree.root
    headings: list[str] = []
    if root is not None:
        for node in root.css("h1, h2, h3"):
            text = _text(node)
            if text and text not in headings:
                headings.append(text)
    claims: list[str] = []
    if root is not None:
        for node in root.css("p, li"):
            text = _text(node)
            if len(text.split()) < 5:  # menu items, labels, prices
                continue
            sentence = first_sentence(text)[:300]
            if sentence not in claims:
                claims.append(sentence)
            if len(claims) >= MAX_CLAIMS:
                break
    return Extract(title[:300], description[:500], headings[:MAX_HEADINGS], claims)


def visible_text(html: str) -> tuple[str, str]:
    """A page's meta description and all of its visible text (scripts,
    styles and templates dropped): what a reader of our own page sees."""
    tree = HTMLParser(html)
    description = _meta(tree, 'meta[name="description"]')
    for node in tree.css("script, style, noscript, template"):
        node.decompose()
    root = tree.body or tree.root
    return description, _text(root)
