"""Ingest's domain logic: plain functions, no Kafka."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit, urlunsplit

from url_normalize import url_normalize

from newsflow_shared import ArticleTooLarge, IngestedArticle, Lineage, RawArticle
from newsflow_shared.text_safety import reads_blank

from . import __version__

TRACKING_PARAMETERS = frozenset(
    [
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "mkt_tok",
        "_hsenc",
        "_hsmi",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "rb_clickid",
    ]
)
"""Query parameters that say who sent the reader, never which story: the same article shared on two networks is one.
Only names no site uses for anything else; a broader rule ("ref", "source", "cid") would make two stories one."""

TRACKING_PREFIXES = ("utm_", "pk_", "mtm_")  # Google Analytics' campaign tags, Matomo's (Piwik's) two


def normalise_url(url: str) -> str:
    """One story, one URL: ``url`` as ``canonical_url`` writes it if it is a web address, else as ``former_normal_form``
    does (a ``urn:`` or a bare name has no host or port to normalise)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return former_normal_form(url)
    try:
        return canonical_url(url)
    except ValueError:  # a host IDNA refuses (a label over 63 characters; UnicodeError is one): kept as it came
        return former_normal_form(url)


def canonical_url(url: str) -> str:
    """A web address in the form every link to the same page shares.

    RFC 3986's normal form (url-normalize: case, the scheme's default port, dot segments, percent-encoding, IDNA),
    without a login, the fragment, a trailing slash or tracking parameters, the others sorted by name (stably: a
    repeated name keeps its values' order). ``https://Site.example:443/a/./b/?utm_source=x&id=3#top`` and
    ``https://site.example/a/b?id=3`` are one article.
    """
    parts = urlsplit(url_normalize(url.strip()))
    pairs = [pair for pair in parts.query.split("&") if pair and not _tracks(pair.partition("=")[0])]
    pairs.sort(key=lambda pair: pair.partition("=")[0])
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") or "/", "&".join(pairs), ""))


def _tracks(name: str) -> bool:
    name = unquote(name).lower()
    return name in TRACKING_PARAMETERS or name.startswith(TRACKING_PREFIXES)


def former_normal_form(url: str) -> str:
    """The normal form ids were made of until December 2026: lower-case scheme and host, no fragment or trailing
    slash. Ids are still read in it where they differ (``former_id``): an article stored then is not stored again."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def without_credentials(url: str | None) -> str | None:
    """``url`` without a ``user:password@`` before its host, as it is stored and shown: the article page linked its
    address with the password in it. The content hash is of the URL as it came; the id, of its canonical form, has
    no login either."""
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


def former_id(raw: RawArticle, given: str) -> str | None:
    """The id an article known by its URL had until December 2026, where it differs from today's (the URL had a
    default port, a tracking parameter, a login, dot segments, parameters out of order...).

    Ingest keeps the former id for an article it passed on under it, so that a re-send is a re-send, and a new
    version a revision of the stored one, rather than a second copy under a new id. ``given`` is the id ``article_id``
    gave it (not made again here: the canonical form costs ~40 µs a URL).
    """
    if raw.id or not (raw.url and raw.url.strip()):
        return None
    earlier = former_normal_form(raw.url)
    former = "url-" + _digest(earlier)
    if former == given:
        return None
    # Only where the earlier form named this page too. It dropped a "#!/story/1" fragment, which the canonical form
    # keeps (as ?_escaped_fragment_=): every such story of a site had one former id, and would be filed under it.
    return former if normalise_url(earlier) == normalise_url(raw.url) else None


def article_id(raw: RawArticle) -> str:
    """The given id; else ``url-`` and a hash of the normalised URL; else ``text-`` and a hash of the body.

    Stable across runs, so a re-sent article always gets the same id; across versions too, but for three changes:
    an article sent with blank text and a page takes its id from the page (before, every such article had one); and
    blank is as a reader sees it since session 30, zero-width characters and "&nbsp;" too. The articles the second
    moved (text of only such characters, and a page) were never stored: cleanup emptied their text and dead-lettered
    them, and ingest forgot them then, so a re-send is read anew under its new id rather than stored twice. The
    third, URLs' canonical form (December 2026), is bridged by ingest: see :func:`former_id`.
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
