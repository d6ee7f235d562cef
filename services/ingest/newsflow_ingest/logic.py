"""Ingest's domain logic: plain functions, no Kafka."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from newsflow_shared import ArticleTooLarge, IngestedArticle, Lineage, RawArticle
from newsflow_shared.text_safety import reads_blank

from . import __version__


def normalise_url(url: str) -> str:
    """Lower-case scheme and host, drop the fragment and a trailing slash: one story, one URL."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def without_credentials(url: str | None) -> str | None:
    """``url`` without a ``user:password@`` before its host, as it is stored and shown: the article page linked its
    address with the password in it. The id and content hash are of the URL as it came, so they do not move."""
    if url is None or "@" not in url:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def url_id(url: str) -> str:
    """The id of an article known by its URL alone: ``newsflow push`` keys the raw record with it too."""
    return "url-" + _digest(normalise_url(url))


def article_id(raw: RawArticle) -> str:
    """The given id; else ``url-`` and a hash of the normalised URL; else ``text-`` and a hash of the body.

    Stable across runs, so a re-sent article always gets the same id; across versions too, but for two changes:
    an article sent with blank text and a page takes its id from the page (before, every such article had one); and
    blank is as a reader sees it since session 30, zero-width characters and "&nbsp;" too. The articles the second
    moved (text of only such characters, and a page) were never stored: cleanup emptied their text and dead-lettered
    them, and ingest forgot them then, so a re-send is read anew under its new id rather than stored twice.
    """
    if raw.id:
        return raw.id
    if raw.url and raw.url.strip():
        return url_id(raw.url)
    # The body cleanup will read: the page where the text is blank (as cleanup decides it). Blank text alone gave
    # every HTML-only article sent with "text": "\n" (or a zero-width space) one id, and storage kept each as a
    # revision of the last.
    body = (raw.html or raw.text or "") if reads_blank(raw.text) else (raw.text or "")
    return "text-" + _digest((raw.title or "") + "\n" + body)


def content_hash(raw: RawArticle) -> str:
    """A hash of everything that makes the article what it is; equal hashes mean an exact re-send."""
    canonical = json.dumps(
        [raw.title, raw.text, raw.html, raw.url, raw.source, raw.published_at and raw.published_at.isoformat()],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_size(raw: RawArticle, max_bytes: int) -> None:
    size = len((raw.text or "").encode("utf-8")) + len((raw.html or "").encode("utf-8"))
    if size > max_bytes:
        raise ArticleTooLarge(
            f"the article body is {size / 1_048_576:.1f} MiB; the limit is {max_bytes / 1_048_576:.1f} MiB "
            "(INGEST_MAX_BYTES)"
        )


def ingest(raw: RawArticle, *, max_bytes: int, normalised: dict[str, int] | None = None) -> IngestedArticle:
    """Validate size, identify, and hand the article on (the contract puts dates in UTC).

    ``normalised`` counts what reading the message removed (NUL, lone surrogates, bidi overrides):
    it is kept in the lineage, so an editor can see that the text is not byte for byte what arrived.
    """
    check_size(raw, max_bytes)
    details: dict[str, object] = {"normalised": normalised} if normalised else {}
    return IngestedArticle(
        id=article_id(raw),
        title=raw.title.strip() if raw.title else None,
        text=raw.text,
        html=raw.html,
        url=without_credentials(raw.url),
        source=raw.source,
        published_at=raw.published_at,
        language_hint=raw.language,
        metadata=raw.metadata,
        content_hash=content_hash(raw),
        received_at=datetime.now(UTC),
        lineage=[Lineage(stage="ingest", version=__version__, details=details)],
    )
