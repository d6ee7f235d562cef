"""Whole web pages to article text, title, author and date, with trafilatura."""

from __future__ import annotations

import re
from dataclasses import dataclass

import lxml.etree
import lxml.html
import trafilatura

from newsflow_shared import ArticleTooLarge

# Parsed here, not by trafilatura: its parser stops at libxml2's 256 levels of nesting (300 unclosed <font> tags
# before the story left nothing) and refuses a fragment of one element (<p>…</p> alone). huge_tree lifts the depth
# limit; document_fromstring wraps a fragment in <html><body>.
_PARSER = lxml.html.HTMLParser(huge_tree=True, remove_comments=True, remove_pis=True, collect_ids=False)
# trafilatura's paragraph search grows with the square of a page's <p> elements (60,000: 7.8 s, 100,000: 23 s, past
# cleanup's CPU budget, and the article was lost with it); 20,000 take ~0.5 s, and no article page has that many.
MOST_PARAGRAPHS = 20_000
# trafilatura walks a page recursively: 2,500 levels of <div> were an empty article ("markup only"), though the
# text was there (lists and tables, retagged below, failed sooner). The deepest news pages nest a few dozen; broken
# ones that must still read, unclosed <font> tags by the hundred.
MOST_LEVELS = 2_000
# Its tables cost the cube of their nesting (600 tables in tables: 4.7 s, 1,300: 16.6 s in 20 KB) and its lists the
# square (100 stacks of lists 240 deep: 9 s in 440 KB), where layout tables and menus nest a few deep: deeper ones are
# read as blocks of text, their words kept.
MOST_NESTED = 4
_NESTED_PARTS = {
    "table": ("table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "colgroup", "col"),
    "list": ("ul", "ol", "li", "dl", "dt", "dd", "menu"),
}
_KIND = {"table": "table", "ul": "list", "ol": "list", "dl": "list", "menu": "list"}
# And a row's cells the square of their number (one <tr> of 40,000 <td>: 5.1 s, 100,000: 51 s, past cleanup's CPU
# budget); the widest tables of figures are a few hundred columns. A wider row is read as rows of that many.
MOST_CELLS_IN_A_ROW = 1_000
# One tag of 100,000 attributes took 41 s (lxml's parse and trafilatura both grow with the square of a tag's
# attributes). A tag that long is looked at, and past this many attributes it keeps its first ones.
MOST_ATTRIBUTES = 1_000
_LONG_TAG_CHARS = 4 * MOST_ATTRIBUTES  # fewer characters cannot hold that many: tags shorter are not counted
_LONG_TAG = re.compile(f"<([A-Za-z][A-Za-z0-9:-]{{0,31}})(\\s[^<>]{{{_LONG_TAG_CHARS},}})>")
_COMMENT_END = re.compile(r"(?:--!?)?$")
# An attribute as the HTML tokenizer reads one: a name, and a value quoted or not (a quoted one may hold spaces).
_ATTRIBUTE = re.compile(r"""\s*[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?""")
# What a browser never shows: <template>, and elements marked hidden, but not hidden="until-found" (a collapsed
# section find-in-page opens) nor a hidden <html> or <body> (a page that script reveals: its text is the article).
_UNSEEN = (
    "//template | //body//*[@hidden][translate(normalize-space(@hidden), 'UNTILFOD', 'untilfod') != 'until-found']"
)


@dataclass(frozen=True, slots=True)
class ExtractedPage:
    title: str | None
    text: str
    author: str | None
    date: str | None


def extract_article(html: str, url: str | None = None) -> ExtractedPage:
    """The main text of a page; navigation, comments and other chrome are left out, and what a browser never shows
    (``<template>``, the ``hidden`` attribute) with them."""
    tree = _parsed(html)
    if tree is None:
        return ExtractedPage(title=None, text="", author=None, date=None)
    paragraphs = sum(1 for _ in tree.iter("p"))
    if paragraphs > MOST_PARAGRAPHS:
        raise ArticleTooLarge(
            f"the page has {paragraphs:,} paragraphs (<p>): cleanup reads pages of at most {MOST_PARAGRAPHS:,},"
            " more than any one article has"
        )
    _within_reach(tree)
    for unseen in tree.xpath(_UNSEEN):
        unseen.drop_tree()
    document = trafilatura.bare_extraction(
        tree,
        url=url,
        include_comments=False,
        include_tables=True,
        with_metadata=True,
        favor_precision=True,
        fast=True,  # no fallback extractors: 2-3x faster on big pages, the same text on article pages
        # The date from metadata and markup only: the extensive search over all text took most of the time.
        date_extraction_params={"extensive_search": False, "original_date": True},
    )
    if document is None:
        return ExtractedPage(title=None, text="", author=None, date=None)
    return ExtractedPage(
        title=document.title,
        # trafilatura ends each paragraph with one newline; ours are separated by a blank line.
        text="\n\n".join(line for line in (document.text or "").split("\n") if line.strip()),
        author=document.author,
        date=document.date,
    )


def _within_reach(tree: lxml.html.HtmlElement) -> None:
    """Refuse a page nested deeper than :data:`MOST_LEVELS`; read tables or lists inside :data:`MOST_NESTED` others of
    their kind, as plain blocks; split rows of over :data:`MOST_CELLS_IN_A_ROW` cells. One walk of the page,
    and each retagged element once."""
    deepest = levels = 0
    open_by_kind = dict.fromkeys(_NESTED_PARTS, 0)
    too_deep: list[tuple[str, lxml.html.HtmlElement]] = []  # the outermost past the limit: each retags what it holds
    wide_rows: list[lxml.html.HtmlElement] = []
    for event, element in lxml.etree.iterwalk(tree, events=("start", "end")):
        kind = _KIND.get(element.tag) if isinstance(element.tag, str) else None
        if event == "start":
            levels += 1
            deepest = max(deepest, levels)
            if kind is not None:
                open_by_kind[kind] += 1
                if open_by_kind[kind] == MOST_NESTED + 1:
                    too_deep.append((kind, element))
            elif element.tag == "tr" and len(element) > MOST_CELLS_IN_A_ROW:
                wide_rows.append(element)
        else:
            levels -= 1
            if kind is not None:
                open_by_kind[kind] -= 1
    if deepest > MOST_LEVELS:
        raise ArticleTooLarge(
            f"the page's markup nests more than {MOST_LEVELS:,} elements deep: cleanup reads pages of at most that"
            " many levels, deeper than any article page"
        )
    for kind, outermost in too_deep:
        for part in outermost.iter(*_NESTED_PARTS[kind]):
            part.tag = "div"
    for row in wide_rows:
        _split(row)


def _split(row: lxml.html.HtmlElement) -> None:
    """``row``'s cells past the first :data:`MOST_CELLS_IN_A_ROW` moved to rows of their own after it, as many each."""
    cells = list(row)
    after = row
    for start in range(MOST_CELLS_IN_A_ROW, len(cells), MOST_CELLS_IN_A_ROW):
        more = lxml.html.Element("tr")
        more.extend(cells[start : start + MOST_CELLS_IN_A_ROW])  # moved, not copied
        after.addnext(more)
        after = more


def _parsed(html: str) -> lxml.html.HtmlElement | None:
    # What trafilatura's own loading did first: control characters out (lxml keeps them in the tree, and trafilatura
    # then failed on the whole page: "All strings must be XML compatible"), a self-closing <html/> opened.
    html = trafilatura.utils.repair_faulty_html(html, html[:50].lower())
    if len(html) > _LONG_TAG_CHARS:
        html = _with_fewer_attributes(html)
    try:
        try:
            return lxml.html.document_fromstring(html, parser=_PARSER)
        except ValueError:  # a str that declares its encoding ("<?xml … encoding=…?>"): lxml wants bytes then
            return lxml.html.document_fromstring(html.encode("utf-8"), parser=_PARSER)
    except (ValueError, lxml.etree.ParserError):  # nothing to parse: no element at all
        return None


def _with_fewer_attributes(html: str) -> str:
    """``html`` with each tag of over :data:`MOST_ATTRIBUTES` attributes cut to its first ones."""
    return _LONG_TAG.sub(_cut_attributes, html)


def _cut_attributes(tag: re.Match[str]) -> str:
    if (cut := _attributes_past_most(tag[2])) is None:
        return tag[0]
    # What a "tag" inside a comment ends with is the comment's end ("-->", "--!>"): cut away, the comment then ran on
    # and took the page with it. Kept, whatever a parser makes of the comment.
    return f"<{tag[1]}{tag[2][:cut]}{_COMMENT_END.search(tag[2])[0]}>"  # type: ignore[index]


def _attributes_past_most(attributes: str) -> int | None:
    """Where the attributes past the first :data:`MOST_ATTRIBUTES` start, or None where there are no more."""
    for count, attribute in enumerate(_ATTRIBUTE.finditer(attributes), 1):
        if count == MOST_ATTRIBUTES:
            cut = attribute.end()
        elif count > MOST_ATTRIBUTES:
            return cut
    return None
