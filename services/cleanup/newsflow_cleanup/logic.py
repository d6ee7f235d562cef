"""Cleanup's domain logic: one ingested article in, one clean article out."""

from __future__ import annotations

from datetime import datetime

from pydantic import TypeAdapter

from newsflow_shared import CleanArticle, EmptyArticle, IngestedArticle, Lineage, Removal
from newsflow_shared.contracts import MAX_TITLE, PlausibleDate, listed_removals
from newsflow_shared.text_safety import has_words, make_safe, reads_blank

from . import __version__
from .boilerplate import strip_boilerplate, strip_lead_in_teasers
from .html_article import extract_article
from .language import LanguageDetector
from .repair import repair
from .settings import CleanupSettings


def clean(article: IngestedArticle, detector: LanguageDetector, settings: CleanupSettings) -> CleanArticle:
    title, author, body, published_at = article.title, article.author, article.text or "", article.published_at
    if reads_blank(body) and article.html:
        page = extract_article(article.html, article.url)
        title, body = title or page.title, page.text
        author = (page.author and make_safe(page.author)) or author
        published_at = published_at or _page_date(page.date)

    paragraphs, removed = strip_boilerplate(repair(body, settings.cleanup_quotes))
    clean_title = _at_most(" ".join(repair(title, settings.cleanup_quotes)), MAX_TITLE) if title else None
    if clean_title and len(paragraphs) > 1 and paragraphs[0].casefold() == clean_title.casefold():
        # Pages repeat their headline as the first line of the body: it is the title, not the text. Not when it is
        # the whole body: a news flash sent with its text as its title is an article, not an empty one.
        removed.insert(0, Removal(what=paragraphs.pop(0), why="the title, repeated at the top of the body"))
    paragraphs, teasers = strip_lead_in_teasers(paragraphs)
    removed += teasers
    text = "\n\n".join(paragraphs)
    if len(text) < settings.cleanup_min_chars or not has_words(text):
        raise EmptyArticle(_emptied(text, removed, settings.cleanup_min_chars))

    language = detector.detect(text, hint=article.language_hint)
    return CleanArticle(
        **article.model_dump(exclude={"text", "html", "language_hint", "title", "author", "lineage", "published_at"}),
        published_at=published_at,
        title=clean_title,
        text=text,
        author=author,
        language=language.code,
        language_confidence=language.confidence,
        removed=listed_removals(removed),
        arrived_text=body,
        lineage=[
            *article.lineage,
            Lineage(stage="cleanup", version=__version__, model="py3langid+lingua", details={"removed": len(removed)}),
        ],
    )


def _emptied(text: str, removed: list[Removal], min_chars: int) -> str:
    """The dead letter's reason: what was left, and what cleanup took out, so that a rule that took too much shows."""
    if not text.strip():
        left = "nothing"
    elif not has_words(text):
        left = "only symbols"
    else:
        left = f"{len(text)} characters, fewer than CLEANUP_MIN_CHARS ({min_chars})"
    if not removed:
        return f"no article text is left after cleanup ({left}): the body is empty or markup only"
    first = removed[0].what if len(removed[0].what) <= 80 else removed[0].what[:79] + "…"
    return (
        f"no article text is left after cleanup ({left}): {len(removed)} line(s) were taken out as not the article,"
        f" the first {first!r} ({removed[0].why})"
    )


def _page_date(found: str | None) -> datetime | None:
    """The date the page gives (its metadata or markup, as trafilatura reads it), for an article sent without one; a
    date the contract would refuse (before 1800, after 2200) is left out rather than fail the article."""
    if not found:
        return None
    try:
        return _PAGE_DATE.validate_python(found)
    except ValueError:  # pydantic's ValidationError is one
        return None


_PAGE_DATE: TypeAdapter[datetime] = TypeAdapter(PlausibleDate)


def _at_most(title: str, characters: int) -> str:
    """A page's <title> has no bound, and repairs can lengthen a title (a ligature "ﬃ" is three letters): past the
    contract's bound it is cut at a space, with an ellipsis, rather than failing the article."""
    if len(title) <= characters:
        return title
    cut = title[: characters - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[characters // 2 :] else cut) + "…"
