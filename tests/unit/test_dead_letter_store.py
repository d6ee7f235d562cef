"""Storage's copy of the DLQ keeps every letter, whatever a producer put in its key and names."""

from __future__ import annotations

from newsflow_shared.db import make_engine, upgrade
from newsflow_storage.dead_letters import DeadLetterStore

from .. import webdata


async def test_a_letter_with_a_key_longer_than_its_column_is_kept(database_url: str) -> None:
    # A record put straight on a keyed topic (articles.ingested, say) with a long key: the key becomes its article_id.
    letter = webdata.dead_letter(1).model_copy(
        update={"article_id": "k" * 300, "original_key": "k" * 300, "stage": "s" * 100, "error": "E" * 300}
    )
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        store = DeadLetterStore(engine)
        await store.keep([letter, webdata.dead_letter(2)])
        kept = {row.source_offset: row for row in await store.recent()}
        assert set(kept) == {1, 2}
        assert (kept[1].article_id, kept[1].original_key) == ("k" * 200, "k" * 300)
        assert (kept[1].stage, kept[1].error) == ("s" * 64, "E" * 200)
    finally:
        await engine.dispose()


async def test_a_letter_with_nul_in_its_key_and_headers_is_kept(database_url: str) -> None:
    """PostgreSQL refuses a NUL in text and in JSON; the web page's copy shows U+FFFD in its place."""
    letter = webdata.dead_letter(1).model_copy(
        update={
            "article_id": "a\x00b",
            "original_key": "k\x00",
            "headers": {"newsflow-trace-id": "t\x00", "x\x00": "v"},
            "reason": "bad \x00 byte",
        }
    )
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        store = DeadLetterStore(engine)
        await store.keep([letter])
        [kept] = await store.recent()
        assert (kept.article_id, kept.original_key, kept.reason) == ("a\ufffdb", "k\ufffd", "bad \ufffd byte")
        assert kept.headers == {"newsflow-trace-id": "t\ufffd", "x\ufffd": "v"}
    finally:
        await engine.dispose()
