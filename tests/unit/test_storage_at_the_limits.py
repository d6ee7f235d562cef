"""Articles at the contracts' limits are stored, and found, on both databases.

PostgreSQL refuses a tsvector of over 1 MB and a B-tree index row of over 2,704 bytes; SQLite has neither limit. Before
migration 0006 a long text, and before the contracts bounded ids and sources in bytes a long id and source, failed
storage's insert on PostgreSQL and the article was dead-lettered.
"""

from __future__ import annotations

import random
import string

from newsflow_shared.contracts import MAX_ID_BYTES, MAX_SOURCE_BYTES
from newsflow_shared.db import make_engine, upgrade
from newsflow_storage.repository import ArticleRepository, Query

from .test_storage import article

FOUR_BYTE_LETTERS = [chr(code) for code in range(0x20000, 0x2A6DF)]  # CJK Extension B


def distinct_words(count: int, seed: int) -> list[str]:
    letters = random.Random(seed)
    return ["".join(letters.choices(string.ascii_lowercase, k=8)) for _ in range(count)]


def hyphenated_four_byte_words(count: int, seed: int) -> list[str]:
    """The most tsvector bytes per character we found (7.7): each word is kept whole and in its two parts."""
    letters = random.Random(seed)
    return [
        "".join(letters.choices(FOUR_BYTE_LETTERS, k=2)) + "-" + "".join(letters.choices(FOUR_BYTE_LETTERS, k=2))
        for _ in range(count)
    ]


async def test_articles_too_long_for_a_search_vector_are_stored_and_found(database_url: str) -> None:
    latin = distinct_words(160_000, seed=1)  # 1.4 MB: a 1.9 MB tsvector of the whole text
    # 249,000 characters, 0.7 MB: a 1.8 MB tsvector of the whole text, 0.8 MB of its first 100,000 characters
    worst = hyphenated_four_byte_words(40_000, seed=2) + distinct_words(1_000, seed=3)
    await upgrade(database_url)
    engine = make_engine(database_url)
    repository = ArticleRepository(engine)
    try:
        stored = await repository.store(
            [
                article("latin", text=" ".join(latin)),
                article("worst", text=" ".join(worst)),
                article("short", text="The council approved the budget."),
            ]
        )
        assert [a.id for a in stored] == ["latin", "worst", "short"]

        async def found(words: str) -> set[str]:
            return {a.id for a in (await repository.search(Query(q=words))).items}

        assert await found(latin[0]) == {"latin"}
        assert await found(worst[0]) == {"worst"}
        assert await found("council budget") == {"short"}
        assert await found("Story latin") == {"latin"}  # the title
        # Past the first 100,000 characters only SQLite finds a word.
        assert await found(latin[-1]) == ({"latin"} if database_url.startswith("sqlite") else set())
        assert await found(worst[-1]) == ({"worst"} if database_url.startswith("sqlite") else set())
    finally:
        await engine.dispose()


async def test_the_widest_ids_and_source_fit_the_indexes(database_url: str) -> None:
    """An id, a duplicate_of and a source at their byte limits (MAX_ID_BYTES, MAX_SOURCE_BYTES) in one index row."""
    # Random letters: PostgreSQL compresses an index row that repeats itself, and would fit a wider one.
    letters = random.Random(4)
    widest_id, original_id, widest_source = (
        "".join(letters.choices(FOUR_BYTE_LETTERS, k=size // 4))
        for size in (MAX_ID_BYTES, MAX_ID_BYTES, MAX_SOURCE_BYTES)
    )
    await upgrade(database_url)
    engine = make_engine(database_url)
    repository = ArticleRepository(engine)
    try:
        await repository.store(
            [
                article(original_id, content_hash="h" * 64),
                article(widest_id, content_hash="h" * 64, source=widest_source, duplicate_of=original_id),
            ]
        )
        copy = await repository.get(widest_id)
        assert copy is not None
        assert (copy.duplicate_of, copy.source) == (original_id, widest_source)
        found = await repository.search(Query(source=widest_source, duplicates="only"))
        assert [a.id for a in found.items] == [widest_id]
    finally:
        await engine.dispose()


async def test_rows_stored_before_the_byte_bounds_are_still_read(database_url: str) -> None:
    """1.1 first bounded ids and sources in characters only: a wider row already stored is read, listed and found."""
    wide_id, wide_source = (
        chr(0x20000) * 150,
        chr(0x20001) * 10,
    )  # 600 bytes: fits PostgreSQL's index beside a short source
    before = article("a").model_copy(update={"id": wide_id, "source": wide_source})  # as 1.1's first contracts took it
    odd = article("douma\x7f1")  # DEL is no control character to the contracts: such an id is fetched like any other
    await upgrade(database_url)
    engine = make_engine(database_url)
    repository = ArticleRepository(engine)
    try:
        await repository.store([before, odd])
        assert (await repository.get(wide_id)).source == wide_source  # type: ignore[union-attr]
        assert [a.id for batch in [b async for b in repository.scan()] for a in batch] == sorted([wide_id, odd.id])
        assert {a.id for a in (await repository.search(Query())).items} == {wide_id, odd.id}
        assert await repository.get(odd.id) is not None
        assert await repository.revisions(odd.id)
    finally:
        await engine.dispose()
