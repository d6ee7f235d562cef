"""The query API: read stored articles over HTTP. OpenAPI at /docs and /openapi.json.

No `from __future__ import annotations` here: FastAPI reads the annotations, some built from settings.
"""

import contextlib
import re
import secrets
from datetime import MAXYEAR, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi import Query as Param
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from newsflow_shared import StoredArticle
from newsflow_shared.db.engine import as_utc
from newsflow_shared.health import StageWatch, Verdict, watch_of
from newsflow_shared.service import exposition

from .repository import ArticleRepository, Duplicates, Query, Sort, day_start
from .settings import StorageSettings

_bearer = HTTPBearer(auto_error=False)


class ArticlePage(BaseModel):
    items: list[StoredArticle]
    next_cursor: str | None = None


class Stats(BaseModel):
    total: int
    duplicates: int
    by_topic: dict[str, int]
    by_language: dict[str, int]
    by_source: dict[str, int] = Field(description="The 1,000 sources with the most articles.")
    sources: int = Field(description="How many sources there are in all.")
    by_day: dict[str, int]


def repository(request: Request) -> ArticleRepository:
    return request.app.state.repository


Repo = Annotated[ArticleRepository, Depends(repository)]


def add_routes(app: FastAPI, settings: StorageSettings) -> None:
    token = settings.storage_api_token.get_secret_value() if settings.storage_api_token else None

    def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        if token is None:
            return
        # As bytes: compare_digest raises TypeError for a str outside ASCII, and any client could send one (a 500).
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(
                401, "a valid 'Authorization: Bearer <token>' header is required", {"WWW-Authenticate": "Bearer"}
            )

    guarded = [Depends(authorised)]

    @app.get("/articles", response_model=ArticlePage, dependencies=guarded, tags=["articles"])
    async def list_articles(
        repo: Repo,
        q: Annotated[str | None, Param(max_length=500, description="Full-text search in title and text.")] = None,
        topic: Annotated[str | None, Param(pattern=r"^medtop:[0-9]{8}$", description="IPTC code, any level.")] = None,
        language: Annotated[str | None, Param(max_length=16)] = None,
        source: Annotated[str | None, Param(max_length=500)] = None,
        published_from: Annotated[
            str | None, Param(alias="from", description="Published at or after: a date or an ISO 8601 time.")
        ] = None,
        published_to: Annotated[
            str | None, Param(alias="to", description="Published before that time; a date includes the whole day.")
        ] = None,
        duplicates: Annotated[Duplicates, Param(description="Near-duplicates: include, exclude or only.")] = "include",
        duplicate_of: Annotated[
            str | None, Param(max_length=200, description="Only the near-duplicates of the article with this id.")
        ] = None,
        id: Annotated[
            str | None,
            Param(
                max_length=200,
                description="Only the article with this id: for ids with a '.' or '..' segment, which clients "
                "resolve in a path before sending it, and ids ending in '/revisions', which name another route.",
            ),
        ] = None,
        limit: Annotated[int, Param(ge=1, le=settings.storage_page_max)] = 50,
        cursor: Annotated[str | None, Param(max_length=1000, description="next_cursor of the previous page.")] = None,
        sort: Annotated[Sort, Param(description="date: newest first; relevance: best match of q first.")] = "date",
    ) -> ArticlePage:
        """Stored articles, newest first, filtered; follow ``next_cursor`` for the next page."""
        _refuse_nul(q=q, language=language, source=source, cursor=cursor, duplicate_of=duplicate_of, id=id)
        try:
            page = await repo.search(
                Query(
                    q=q,
                    topic=topic,
                    language=language,
                    source=source,
                    published_from=_bound(published_from, end=False),
                    published_to=_bound(published_to, end=True),
                    duplicates=duplicates,
                    duplicate_of=duplicate_of,
                    article_id=id,
                    limit=limit,
                    cursor=cursor,
                    sort=sort,
                )
            )
        except ValueError as error:
            raise HTTPException(422, str(error)) from error
        return ArticlePage(items=page.items, next_cursor=page.next_cursor)

    # Path-typed: an id may contain '/'. The revisions route comes first so that it is not read as an id.
    @app.get("/articles/{article_id:path}/revisions", dependencies=guarded, tags=["articles"])
    async def get_revisions(
        article_id: str,
        repo: Repo,
        after: Annotated[int, Param(ge=0, le=2**31 - 1, description="The last revision of the previous page.")] = 0,
        limit: Annotated[int, Param(ge=1, le=settings.storage_page_max)] = settings.storage_page_max,
    ) -> list[dict[str, Any]]:
        """The enrichments an article has had, oldest first, ``limit`` at a time: the next page is ``after`` the last
        revision of this one (an empty page: no more)."""
        revisions = await repo.revisions(article_id, after=after, limit=limit)
        # Past the last page: [] for an article there is (every one has revision 1), 404 for one there is not.
        if not revisions and (after == 0 or not await repo.revisions(article_id, limit=1)):
            raise HTTPException(404, _not_found(article_id, f"{article_id}/revisions"))
        return revisions

    @app.get("/articles/{article_id:path}", response_model=StoredArticle, dependencies=guarded, tags=["articles"])
    async def get_article(article_id: str, repo: Repo) -> StoredArticle:
        """One stored article by id (ids may hold slashes: ``/articles/a/b`` is the article ``a/b``)."""
        article = await repo.get(article_id)
        if article is None:
            raise HTTPException(404, _not_found(article_id))
        return article

    @app.get("/stats", response_model=Stats, dependencies=guarded, tags=["articles"])
    async def stats(repo: Repo) -> Stats:
        """Counts: in all, and by topic (rolled up), language, source and day stored."""
        return Stats(**await repo.stats())

    @app.get("/health", tags=["operations"])
    async def health(request: Request) -> JSONResponse:
        """Liveness: the consumer lives and moves. Never asks the database: an outage must not restart storage."""
        return _verdict(await _watch(request).liveness())

    @app.get("/ready", tags=["operations"])
    async def ready(request: Request, repo: Repo) -> JSONResponse:
        """Readiness: Kafka answers, the consumer joined its group, and the database answers."""
        verdict = await _watch(request).readiness()
        verdict.problems += await _database_problems(repo)
        return _verdict(verdict)

    @app.get("/ready/api", tags=["operations"])
    async def ready_to_serve(repo: Repo) -> JSONResponse:
        """Readiness of the query API and the page: the database answers. Kubernetes routes the API's Service by
        this one: with /ready, an outage of Kafka (which only the consumer needs) took every replica out of the
        Service, and the articles already stored out of reach."""
        return _verdict(Verdict(problems=await _database_problems(repo)))

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics: FastStream's and Newsflow's (see the README's operations section)."""
        body, content_type = await exposition(_watch(request))
        return Response(body, media_type=content_type)


def _watch(request: Request) -> StageWatch:
    watch = watch_of(request.app.state.broker)
    assert watch is not None, "storage's broker belongs to its Stage"
    return watch


async def _database_problems(repo: ArticleRepository) -> list[str]:
    """What keeps the database from answering, for a readiness probe: nothing, or one sentence."""
    try:
        await repo.ping()
    except Exception as error:
        return [f"the database does not answer: {type(error).__name__}"]
    return []


def _verdict(verdict: Verdict) -> JSONResponse:
    return JSONResponse(verdict.as_json(), status_code=200 if verdict.ok else 503)


def _not_found(article_id: str, asked: str | None = None) -> str:
    """404's detail; for a path ending in /revisions, how to reach an article whose own id ends so."""
    if asked is None:
        return f"no article with id {article_id!r}"
    return (
        f"no article with id {article_id!r} (an article whose id is {asked!r} itself is at "
        f"/articles?id={quote(asked, safe='')})"
    )


def _refuse_nul(**values: str | None) -> None:
    """A NUL character is never in stored text, and PostgreSQL refuses it outright: a clear 422, not a 500."""
    for name, value in values.items():
        if value is not None and "\x00" in value:
            raise HTTPException(422, f"{name!r} contains a NUL character")


def _bound(value: str | None, *, end: bool) -> datetime | None:
    """A date means its whole day (UTC); a time without an offset is UTC.

    A date in any form ISO 8601 has (``20180402``, ``2018-W14-1``) is a day: told apart by its length, those were
    read as midnight, and ``to=20180402`` left out the whole of that day. A week without its day (``2018-W14``) is
    refused: Python reads it as the Monday.
    """
    if value is None:
        return None
    if re.match(r"\d{4}-?W\d{2}(?![-\d])", value):  # 2018-W14, and with a time: 2018-W14T10:00
        raise HTTPException(422, f"{value!r} is a week: give a day of it (2018-W14-1) or a date (YYYY-MM-DD)")
    day: date | None = None
    with contextlib.suppress(ValueError):
        day = date.fromisoformat(value)
    try:
        moment = day_start(day) if day is not None else datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    try:
        if day is not None:
            return moment + timedelta(days=1) if end else moment
        return as_utc(moment)
    except OverflowError:  # the day after 9999-12-31, or year 1 or 9999 moved to UTC
        if end and moment.year == MAXYEAR:
            return None  # up to the end of time: no bound
        raise HTTPException(422, f"{value!r} is outside the years a time can be searched in") from None
