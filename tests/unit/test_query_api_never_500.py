"""The query API answers any query string with a 2xx or a clear 4xx, never a 5xx (issue #14).

Found by hand first: on SQLite a search of only spaces and one with a NUL character returned 500;
hypothesis now throws every kind of parameter at it, on a database that holds articles.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from faststream.kafka import TestKafkaBroker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsflow_storage.app import create_app
from newsflow_storage.settings import StorageSettings

from .test_storage import article

# Any text a URL can carry: everything but lone surrogates, which no client can encode.
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_DATES = st.one_of(
    _TEXT,
    st.dates().map(str),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31", "9999-12-31T23:59:59-01:00", "2026-02-30"]),
)
_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "q": st.one_of(
            _TEXT, st.sampled_from(["   ", "\x00", "Douma\x00", '"', "AND OR NOT", "*", "NEAR(a b)", "a:b"])
        ),
        "topic": st.one_of(_TEXT, st.just("medtop:16000000")),
        "language": _TEXT,
        "source": _TEXT,
        "from": _DATES,
        "to": _DATES,
        "duplicates": st.one_of(_TEXT, st.sampled_from(["include", "exclude", "only"])),
        "limit": st.one_of(_TEXT, st.integers(-5, 100_000).map(str)),
        "cursor": st.one_of(_TEXT, st.sampled_from(["b2Zmc2V0fDUw", "MjAyNi0wMS0wMXx4"])),
        "sort": st.one_of(_TEXT, st.sampled_from(["date", "relevance"])),
    },
)


class Client:
    """Calls into an app served in a portal's event loop: hypothesis drives plain functions."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self.portal, self.client = portal, client

    def get(self, url: str, **options: Any) -> httpx.Response:
        return self.portal.call(lambda: self.client.get(url, **options))


@asynccontextmanager
async def served(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(StorageSettings(database_url=database_url))
    async with TestKafkaBroker(app.state.broker), app.router.lifespan_context(app):
        await app.state.repository.store(
            [article(f"f{i}", text="Rebels left Douma by bus. <script>alert(1)</script>") for i in range(3)]
        )
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """The API on each database in turn: PostgreSQL refuses in a query what SQLite takes (a NUL character)."""
    database_url = (
        f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('fuzz') / 'api.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("module_postgres")
    )
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(served(database_url)) as http:
        yield Client(portal, http)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=_PARAMS)
def test_any_query_gets_a_2xx_or_a_clear_4xx(client: Client, params: dict[str, str]) -> None:
    response = client.get("/articles", params=params)
    assert response.status_code in {200, 422}, (params, response.status_code, response.text)
    if response.status_code == 422:
        assert response.json()["detail"], "a 4xx says what was wrong"


_REVISION_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "after": st.one_of(_TEXT, st.integers(-(2**70), 2**70).map(str)),
        "limit": st.one_of(_TEXT, st.integers(-5, 100_000).map(str)),
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=_REVISION_PARAMS)
def test_any_revisions_page_gets_a_2xx_or_a_clear_4xx(client: Client, params: dict[str, str]) -> None:
    """Found by a review: an ``after`` past the column's integers was a 500 on either database."""
    response = client.get("/articles/f1/revisions", params=params)
    assert response.status_code in {200, 404, 422}, (params, response.status_code, response.text)
    if response.status_code != 200:
        assert response.json()["detail"], "a 4xx says what was wrong"


@pytest.mark.parametrize("q", ["   ", "\t \n", "\x00", "Douma\x00", " Douma "])
def test_blank_and_nul_searches_found_by_hand(client: Client, q: str) -> None:
    response = client.get("/articles", params={"q": q})
    if "\x00" in q:
        assert response.status_code == 422
        assert "NUL" in response.json()["detail"]
    else:
        assert response.status_code == 200
        assert len(response.json()["items"]) == 3  # spaces around a word, or only spaces, search as expected


@pytest.mark.parametrize(
    "path",
    [
        "/articles/%00",
        "/articles/f1%00",
        "/articles/%00/revisions",
        "/article/%00",
        "/articles/%ED%A0%80",
        "/articles/%FF",
    ],
)
def test_an_id_no_article_can_have_is_not_found(client: Client, path: str) -> None:
    """Found by hand on PostgreSQL: a NUL in the id of /articles/{id} (and the web page's /article/{id}) was a 500."""
    assert client.get(path).status_code == 404


def test_relevance_sort_pages_through_every_match(client: Client) -> None:
    seen, cursor = [], None
    while True:
        params = {"q": "Douma bus", "sort": "relevance", "limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = client.get("/articles", params=params).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == ["f0", "f1", "f2"]
