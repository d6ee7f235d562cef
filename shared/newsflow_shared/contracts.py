"""The message contracts: one Pydantic model per hop, JSON on the wire.

Every topic payload is defined here and nowhere else, so producers, services and
consumers cannot drift apart. Each model carries a ``schema_version``: a consumer
that sees a major version it does not know dead-letters the message instead of
guessing. ``newsflow schemas`` exports the JSON Schemas to ``schemas/``.

The flow::

    RawArticle ─ingest→ IngestedArticle ─cleanup→ CleanArticle ─classify→ EnrichedArticle ─storage→ StoredArticle
                 └──────────── anything that fails for good ──────────────→ DeadLetter
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .text_safety import SafeText, check_json, free_key, has_words, refuse_unsafe

SCHEMA_VERSION = "1.2"
"""Bumped in its minor part for additive changes, in its major part for breaking ones."""


def utcnow() -> datetime:
    return datetime.now(UTC)


EARLIEST = datetime(1800, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _plausible_date(value: datetime) -> datetime:
    """In UTC, and between 1800 and 2200: a year-1 date with an offset cannot even be converted to UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} cannot be converted to UTC: it is out of any range") from None
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"{value.isoformat()} is not a plausible date: it must fall between 1800 and 2200")
    return value


_A_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?")


def _as_written(value: Any, info: ValidationInfo) -> Any:
    """A date as ISO 8601 writes it, never a number: pydantic reads a number, or a string of digits, as seconds (or
    milliseconds) since 1970, so that "20240315", ISO 8601's basic form of a date, was stored as 1970-08-23, and
    "2024" as 00:33:44 on 1 January 1970, each well within the plausible years."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            f"field '{info.field_name}': {value!r} is a number, not a date (seconds or milliseconds since 1970?):"
            " give it in ISO 8601, as 2024-03-15 or 2024-03-15T10:00:00Z"
        )
    if isinstance(value, str) and _A_NUMBER.fullmatch(stripped := value.strip()):
        try:
            return datetime.fromisoformat(stripped)  # 20240315, as the query API reads it too
        except ValueError:
            raise ValueError(
                f"field '{info.field_name}': {value[:40]!r} is a number, not a date: give it in ISO 8601, as"
                " 2024-03-15 or 2024-03-15T10:00:00Z"
            ) from None
    return value


PlausibleDate = Annotated[datetime, BeforeValidator(_as_written), AfterValidator(_plausible_date)]
"""A timestamp every store can keep, in UTC; the same bounds at every hop."""

SafeMetadata = Annotated[dict[str, Any], AfterValidator(check_json)]

# Column sizes of the database (shared/newsflow_shared/db/tables.py), enforced at every hop so that
# a later stage or the database never meets a value the first one accepted.
MAX_TITLE = 2_000
MAX_URL = 4_000
MAX_SOURCE = 500
MAX_LANGUAGE = 16
# PostgreSQL keeps a B-tree index row in at most 2,704 bytes, and the web page's indexes hold an article's id, source
# and duplicate_of in one row: ids of 200 four-byte letters and a source of 500 made 3,632, and the article was refused.
# An id of 512 bytes (Elasticsearch's limit too) and a source of 1,500 (500 characters of any script but emoji and rare
# CJK) leave ~130 bytes to spare: ids of 512 and a source of 1,600 were stored, 1,700 was not. SQLite has no such
# limit; the bounds hold on both, so what one database keeps, so does the other.
MAX_ID_BYTES = 512
MAX_SOURCE_BYTES = 1_500


AS_STORED = {"as_stored": True}
"""Validation context for reading what a database already holds: the byte bounds came in 1.1's lifetime, and a row
stored before them that could not be read would make every page that holds it a server error."""


def _at_most_bytes(limit: int, field: str) -> AfterValidator:
    def check(value: str, info: ValidationInfo) -> str:
        # Only a string of over a quarter of the limit in characters can be over it: no character takes more than four.
        if len(value) * 4 > limit and not _as_stored(info):
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > limit:
                raise ValueError(
                    f"the {field} takes {size:,} bytes in UTF-8; at most {limit:,} fit the database's indexes"
                )
        return value

    return AfterValidator(check)


class Contract(BaseModel):
    """Base of every message: strict about types, tolerant of additions by newer producers."""

    model_config = ConfigDict(extra="ignore", ser_json_bytes="base64", val_json_bytes="base64")

    schema_version: str = Field(default=SCHEMA_VERSION, description="Contract version, MAJOR.MINOR.")

    @model_validator(mode="after")
    def _known_major_version(self) -> Contract:
        major = self.schema_version.split(".", 1)[0]
        if major != SCHEMA_VERSION.split(".", 1)[0]:
            # The value as sent, but not all of it: a record can hold megabytes there.
            shown = repr(self.schema_version[:40]) + ("…" if len(self.schema_version) > 40 else "")
            raise ValueError(f"schema_version {shown} is not supported; this service reads {SCHEMA_VERSION}")
        return self


ArticleId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        # No spaces, control characters or bidi overrides (lone surrogates never get past the JSON parser).
        pattern=r"^[^\s\x00-\x1f\u202a-\u202e\u2066-\u2069]+$",
        description="Stable article id: the one given, else a hash of the URL, else of the text. Kafka key on every hop. "
        "At most 512 bytes in UTF-8.",
        examples=["reuters-2018-04-02-douma"],
    ),
    _at_most_bytes(MAX_ID_BYTES, "id"),
]


_ARTICLE_ID = TypeAdapter(ArticleId)


def is_article_id(value: str) -> bool:
    """Whether ``value`` could be an article's id: for ids read from elsewhere (a dead letter anyone could write)."""
    try:
        _ARTICLE_ID.validate_python(value)
    except ValidationError:
        return False
    return True


class RawArticle(Contract):
    """What users push to the ingest topic. ``text`` or ``html`` is required; unknown fields land in ``metadata``."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=False)

    # Strict strings: a number where text belongs is a producer bug to report, not to paper over.
    id: Annotated[ArticleId, Strict()] | None = None
    title: StrictStr | None = Field(default=None, max_length=MAX_TITLE)
    text: StrictStr | None = Field(default=None, description="Plain-text body.")
    html: StrictStr | None = Field(default=None, description="A whole web page or an HTML fragment.")
    url: StrictStr | None = Field(default=None, max_length=MAX_URL)
    source: Annotated[StrictStr, _at_most_bytes(MAX_SOURCE_BYTES, "source")] | None = Field(
        default=None, max_length=MAX_SOURCE, description="Publisher or feed name; at most 1,500 bytes in UTF-8."
    )
    published_at: PlausibleDate | None = Field(
        default=None, description="ISO 8601 between 1800 and 2200; a time without an offset is taken as UTC."
    )
    language: StrictStr | None = Field(
        default=None, max_length=MAX_LANGUAGE, description="A hint (ISO 639-1); cleanup verifies it."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form; unknown top-level fields go here.")

    @model_validator(mode="before")
    @classmethod
    def _fold_unknown_fields_into_metadata(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields)
        extra = {k: v for k, v in data.items() if k not in known}
        if not extra:
            return data
        folded = {k: v for k, v in data.items() if k in known}
        metadata = folded.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            return folded  # let validation report the wrong type
        merged = dict(metadata or {})
        for key, value in extra.items():  # a field also in "metadata" keeps both values: "editor (2)"
            merged[free_key(key, merged)] = value
        folded["metadata"] = merged
        return folded

    @field_validator("url")
    @classmethod
    def _parseable_url(cls, url: str | None) -> str | None:
        if url is not None and url.strip():
            try:
                urlsplit(url.strip()).port  # noqa: B018 - reading the port is what checks it
            except ValueError as error:
                raise ValueError(f"{url[:100]!r} does not parse as a URL ({error})") from None
        return url

    @model_validator(mode="after")
    def _has_a_body(self) -> RawArticle:
        if not (self.text and self.text.strip()) and not (self.html and self.html.strip()):
            raise ValueError("the article has no body: give a non-empty 'text' or 'html'")
        return self


def _as_stored(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("as_stored"))


def _checked_unless_stored(check: Callable[[Any], Any]) -> AfterValidator:
    """``check``, except on what a database already holds (``AS_STORED``): the nested fields below were checked only
    from 1.1's lifetime on, and a row stored before that could not be read would make every page that holds it a
    server error."""

    def run(value: Any, info: ValidationInfo) -> Any:
        return value if _as_stored(info) else check(value)

    return AfterValidator(run)


CarriedText = Annotated[str, _checked_unless_stored(refuse_unsafe)]
"""Text a stage writes into an article beside its body (lineage, removals, topic labels): refused as SafeText is
(NUL, lone surrogates, bidi overrides), which these fields were not. A producer that wrote such characters there put
a bidi override on storage's article page, and a NUL that PostgreSQL refuses at the last hop."""


class Lineage(BaseModel):
    """Who touched the article and when: one entry per stage, in order."""

    stage: CarriedText
    version: CarriedText
    at: datetime = Field(default_factory=utcnow)
    model: CarriedText | None = None
    details: Annotated[dict[str, Any], _checked_unless_stored(check_json)] = Field(default_factory=dict)


class ArticleBase(Contract):
    """Fields every hop after ingest carries forward."""

    id: ArticleId
    title: SafeText | None = Field(default=None, max_length=MAX_TITLE)
    url: SafeText | None = Field(default=None, max_length=MAX_URL)
    source: Annotated[SafeText, _at_most_bytes(MAX_SOURCE_BYTES, "source")] | None = Field(
        default=None, max_length=MAX_SOURCE
    )
    published_at: PlausibleDate | None = None
    metadata: SafeMetadata = Field(default_factory=dict)
    content_hash: str = Field(max_length=64, description="Hash of the raw content: equal hashes mean an exact re-send.")
    received_at: PlausibleDate = Field(default_factory=utcnow)
    lineage: list[Lineage] = Field(default_factory=list)


class IngestedArticle(ArticleBase):
    """Validated and identified: ``articles.ingested``."""

    text: SafeText | None = None
    html: SafeText | None = None
    language_hint: SafeText | None = Field(default=None, max_length=MAX_LANGUAGE)
    author: SafeText | None = Field(
        default=None,
        description="The byline, where it is known before cleanup: `newsflow replay --stage cleanup` carries the "
        "stored one, found on a page that is not sent again. Cleanup keeps it unless the page names one. Added in 1.2.",
    )


MAX_REMOVALS = 201
"""Entries of an article's ``removed``: cleanup lists 200 and sums up the rest in one more (the whole body that arrived
is ``arrived_text``). A page of 450,000 "Ad" lines was a 24 MB article of 450,000 entries, and every page of storage
that held it took 20 s and gigabytes."""
MAX_REMOVAL_CHARS = 2_000
"""Characters of one removal's ``what``; cleanup cuts a longer one (its whole text is in ``arrived_text``)."""
MAX_REMOVED_CHARS = 24_000
"""Characters of all the ``what``s an article lists: :func:`listed_removals` stops listing at ``LISTED_CHARS`` (so
the last may end by 22,000) and sums up the rest, and a page of 200 articles then holds at most ~5 MB of them."""
LISTED_CHARS = 20_000
SUMMED_UP = "not listed one by one: the body as it arrived holds them"
"""The ``why`` of the entry that sums up the removals not listed."""
# Numbers as listed_removals writes them (thousands between commas, at most 18 digits): anything else in a summing-up
# entry's place is an ordinary removal, whoever wrote it.
_COUNT = r"(\d{1,3}(?:,\d{3}){0,5})"
_SUMMED_UP_WHAT = re.compile(rf"{_COUNT} more removed paragraphs?, {_COUNT} characters in all")


class Removal(BaseModel):
    """One thing cleanup removed, so an editor can audit it."""

    what: CarriedText
    why: CarriedText


def listed_removals(removed: list[Removal]) -> list[Removal]:
    """What an article lists of ``removed``: the first ones in order, each cut to ``MAX_REMOVAL_CHARS``, until
    ``MAX_REMOVALS - 1`` or ``LISTED_CHARS``; then one entry (``SUMMED_UP``) that says how many more and how long they
    were. ``arrived_text`` keeps every line: the list is for reading, and a page of 450,000 "Ad" lines listed whole made
    a 24 MB article that stalled storage's pages for 20 s.

    A list made here can be given again with more added (cleanup's learned boilerplate, found after): its summing-up
    entry counts for what it summed up."""
    fits = len(removed) <= MAX_REMOVALS and not any(r.why == SUMMED_UP for r in removed)
    if fits and sum(min(len(r.what), MAX_REMOVAL_CHARS) for r in removed) <= LISTED_CHARS:
        return [_cut(r) for r in removed]
    shown: list[Removal] = []
    chars = more = more_chars = 0
    for removal in removed:
        summed = _SUMMED_UP_WHAT.fullmatch(removal.what) if removal.why == SUMMED_UP else None
        if summed is not None:
            more += int(summed.group(1).replace(",", ""))
            more_chars += int(summed.group(2).replace(",", ""))
        elif more or len(shown) == MAX_REMOVALS - 1 or chars >= LISTED_CHARS:
            more, more_chars = more + 1, more_chars + len(removal.what)
        else:
            shown.append(_cut(removal))
            chars += len(shown[-1].what)
    if more:
        what = f"{more:,} more removed paragraph{'s' if more > 1 else ''}, {more_chars:,} characters in all"
        shown.append(Removal(what=what, why=SUMMED_UP))
    return shown


def _cut(removal: Removal) -> Removal:
    if len(removal.what) <= MAX_REMOVAL_CHARS and len(removal.why) <= MAX_REMOVAL_CHARS:
        return removal
    return Removal(what=_at_most(removal.what, MAX_REMOVAL_CHARS), why=_at_most(removal.why, MAX_REMOVAL_CHARS))


def _at_most(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _listable(removed: list[Removal]) -> list[Removal]:
    """What an article may list of its removals (cleanup's own list is any length until it lists it)."""
    if len(removed) > MAX_REMOVALS:
        raise ValueError(f"{len(removed):,} entries, more than {MAX_REMOVALS:,}")
    for position, removal in enumerate(removed):
        if len(removal.what) > MAX_REMOVAL_CHARS or len(removal.why) > MAX_REMOVAL_CHARS:
            raise ValueError(f"entry {position} is longer than {MAX_REMOVAL_CHARS:,} characters")
    if (chars := sum(len(removal.what) for removal in removed)) > MAX_REMOVED_CHARS:
        raise ValueError(f"the entries list {chars:,} characters, more than {MAX_REMOVED_CHARS:,}")
    return removed


class CleanArticle(ArticleBase):
    """Repaired text with its language: ``articles.clean``."""

    text: SafeText = Field(description="Clean body; paragraphs separated by one blank line.")
    language: str = Field(max_length=MAX_LANGUAGE, description="ISO 639-1 code, or 'und' when undetermined.")
    language_confidence: float = Field(ge=0.0, le=1.0)
    author: SafeText | None = None
    duplicate_of: ArticleId | None = None
    duplicate_score: float | None = Field(default=None, ge=0.0, le=1.0)
    removed: Annotated[list[Removal], _checked_unless_stored(_listable)] = Field(default_factory=list)
    arrived_text: SafeText | None = Field(
        default=None,
        description="The body as cleanup received it (or extracted it from the page), before repairs and removals: "
        "what storage's web page shows the clean text's changes against. Added in 1.1.",
    )

    @field_validator("text")
    @classmethod
    def _has_words(cls, text: str, info: ValidationInfo) -> str:
        """Cleanup dead-letters an article with no letter or digit left; one that another producer put on the topic
        was given topics all the same (an empty text: 0.43 politics). Not asked of a stored row (``AS_STORED``):
        articles stored before this check must still be read, listed and replayed."""
        if not has_words(text) and not _as_stored(info):
            raise ValueError("the text has no letter or digit: there is nothing to classify or store")
        return text


MAX_LABEL = 200
"""Characters of a topic's label (IPTC's longest English name is 47; a model of your own names its own)."""


def _short_label(label: str) -> str:
    """Unbounded, a producer on ``articles.enriched`` could give each of an article's topics a megabyte of label,
    which every page and facet of storage then read and showed."""
    if len(label) > MAX_LABEL:
        raise ValueError(f"a topic label is at most {MAX_LABEL} characters; this one has {len(label):,}")
    return label


class TopicScore(BaseModel):
    """One IPTC Media Topic assigned to an article."""

    code: str = Field(pattern=r"^medtop:[0-9]{8}$", examples=["medtop:16000000"])  # \d takes any script's digits
    label: Annotated[CarriedText, _checked_unless_stored(_short_label)] = Field(examples=["conflict, war and peace"])
    score: float = Field(ge=0.0, le=1.0)
    level: int = Field(default=1, ge=1, description="1 for the 17 top-level topics.")


class EnrichedArticle(CleanArticle):
    """Classified: ``articles.enriched``."""

    topics: list[TopicScore] = Field(default_factory=list, description="Best first.")


class StoredArticle(EnrichedArticle):
    """The stored record: the row storage keeps, served by the API and announced on ``articles.stored``."""

    stored_at: datetime = Field(default_factory=utcnow)
    revision: int = Field(default=1, ge=1, description="Grows by one each time the enrichment changes.")


class SkippedArticle(Contract):
    """An exact re-send that ingest did not pass on: ``articles.skipped``."""

    id: ArticleId
    content_hash: str
    reason: str
    first_seen_at: datetime | None = None
    skipped_at: datetime = Field(default_factory=utcnow)


class DeadLetter(Contract):
    """A message a stage gave up on: ``articles.dlq``. Nothing is dropped silently."""

    stage: str = Field(examples=["ingest"])
    error: str = Field(description="Exception class.", examples=["ValidationError"])
    reason: str = Field(description="What went wrong, in a sentence a person understands.")
    article_id: str | None = None
    original: bytes = Field(description="The message as it arrived, base64 in JSON.")
    original_size: int = Field(ge=0)
    original_truncated: bool = False
    original_key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    source_topic: str
    source_partition: int
    source_offset: int
    attempts: int = Field(ge=1)
    failed_at: datetime = Field(default_factory=utcnow)
    status: Literal["dead-letter"] = "dead-letter"


ALL_CONTRACTS: tuple[type[BaseModel], ...] = (
    RawArticle,
    IngestedArticle,
    CleanArticle,
    EnrichedArticle,
    StoredArticle,
    SkippedArticle,
    DeadLetter,
)
