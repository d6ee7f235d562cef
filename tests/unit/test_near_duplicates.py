"""Near-duplicates on realistic rewrites, with the index in a real (SQLite) database shared by two replicas."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from sqlalchemy import insert
from sqlalchemy import text as sql

from newsflow_cleanup import near_duplicates
from newsflow_cleanup.near_duplicates import DuplicateIndex, Fingerprint
from newsflow_cleanup.settings import CleanupSettings
from newsflow_shared.db import make_engine, upgrade
from newsflow_shared.db.tables import cleanup_fingerprints

SAMPLES = Path(__file__).parents[2] / "samples"
SEED = (SAMPLES / "seed-article.txt").read_text().split("\n", 1)[1]
PARAGRAPHS = [p for p in SEED.split("\n\n") if p.strip() and p.strip() != "Latest News"]
SYNONYMS = {
    "said": "stated",
    "rebels": "insurgents",
    "fighters": "militants",
    "deal": "agreement",
    "town": "city",
    "group": "faction",
}


def respun(text: str) -> str:
    """Words swapped for synonyms and sentences reordered, as content farms do."""
    for word, other in SYNONYMS.items():
        text = text.replace(f" {word} ", f" {other} ")
    paragraphs = text.split("\n\n")
    random.Random(3).shuffle(paragraphs)
    return "\n\n".join(paragraphs)


OTHER_STORY_SAME_SUBJECT = (
    "Syrian government forces pressed on with their campaign in eastern Ghouta on Sunday, as aid agencies warned that "
    "civilians in Douma were running out of food and medicine.\n\nThe Red Crescent said a convoy of 13 trucks had been "
    "allowed into the town for the first time in weeks, but that it carried only a fraction of what was needed.\n\n"
    "Doctors in the enclave described hospitals working without electricity and treating hundreds of wounded people a "
    "day. The United Nations called for a pause in the fighting to allow the sick to be evacuated.\n\nRussia, which "
    "backs the government, said it had opened humanitarian corridors, but few residents had used them, fearing arrest."
)


@pytest.fixture
async def index(database_url: str) -> AsyncIterator[tuple[DuplicateIndex, DuplicateIndex]]:
    await upgrade(database_url)
    first, second = make_engine(database_url), make_engine(database_url)
    yield DuplicateIndex(first, 0.45), DuplicateIndex(second, 0.45)  # two replicas, one database
    await first.dispose()
    await second.dispose()


@pytest.mark.parametrize(
    "copy",
    [
        pytest.param("\n\n".join(PARAGRAPHS), id="syndicated"),
        pytest.param(respun(SEED), id="respun"),
        pytest.param("\n\n".join(PARAGRAPHS[: len(PARAGRAPHS) // 2]), id="first-half"),
        pytest.param("\n\n".join(PARAGRAPHS[::2]), id="paragraphs-dropped"),
        pytest.param(
            "Advertisement\n\n" + respun(SEED) + "\n\nShare this article\n\nRead more: Syria latest", id="boilerplate"
        ),
    ],
)
async def test_copies_are_found_across_replicas(index: tuple[DuplicateIndex, DuplicateIndex], copy: str) -> None:
    replica_a, replica_b = index
    assert await replica_a.check_and_add("original", SEED) is None
    match = await replica_b.check_and_add("copy", copy)
    assert match is not None
    assert match.duplicate_of == "original"
    assert match.score >= 0.45


async def test_a_story_on_the_same_subject_is_not_a_duplicate(index: tuple[DuplicateIndex, DuplicateIndex]) -> None:
    replica_a, _ = index
    await replica_a.check_and_add("original", SEED)
    assert await replica_a.check_and_add("same-subject", OTHER_STORY_SAME_SUBJECT) is None


async def test_a_story_quoting_one_paragraph_is_not_a_duplicate(index: tuple[DuplicateIndex, DuplicateIndex]) -> None:
    replica_a, _ = index
    await replica_a.check_and_add("original", SEED)
    quoting = OTHER_STORY_SAME_SUBJECT + "\n\n" + PARAGRAPHS[2]
    assert await replica_a.check_and_add("quotes-a-paragraph", quoting) is None


async def test_families_point_at_the_first_and_redelivery_keeps_it(
    index: tuple[DuplicateIndex, DuplicateIndex],
) -> None:
    replica_a, replica_b = index
    await replica_a.check_and_add("first", SEED)
    assert (await replica_b.check_and_add("second", respun(SEED))).duplicate_of == "first"  # type: ignore[union-attr]
    third = await replica_a.check_and_add("third", "\n\n".join(PARAGRAPHS[:6]))
    assert third is not None
    assert third.duplicate_of == "first"
    # The original redelivered (a crash, a replay) must not become a copy of its own copies.
    assert await replica_b.check_and_add("first", SEED) is None


def test_containment_is_symmetric_in_what_it_asks() -> None:
    whole, half = Fingerprint.of(SEED), Fingerprint.of("\n\n".join(PARAGRAPHS[:8]))
    assert whole.containment(half) == pytest.approx(half.containment(whole))
    assert whole.containment(half) > 0.9


async def test_a_redelivered_batch_finds_the_same_originals(index: tuple[DuplicateIndex, DuplicateIndex]) -> None:
    replica_a, replica_b = index
    batch = [("one", SEED), ("two", respun(SEED)), ("three", "\n\n".join(PARAGRAPHS[:5]))]
    async with replica_a.engine.begin() as connection:
        first = await replica_a.check_and_add_many(connection, batch)
    async with replica_b.engine.begin() as connection:
        again = await replica_b.check_and_add_many(connection, list(reversed(batch)))
    assert [m.duplicate_of if m else None for m in first] == [None, "one", "one"]
    assert [m.duplicate_of if m else None for m in reversed(again)] == [None, "one", "one"]


async def test_an_article_twice_in_one_batch_is_indexed_once_and_not_its_own_copy(
    index: tuple[DuplicateIndex, DuplicateIndex],
) -> None:
    # A redelivery can put the same record in one poll twice; each LSH row is written once, not refused as a conflict.
    replica_a, replica_b = index
    async with replica_a.engine.begin() as connection:
        matches = await replica_a.check_and_add_many(connection, [("one", SEED), ("one", SEED), ("two", SEED)])
    assert [m.duplicate_of if m else None for m in matches] == [None, None, "one"]
    assert await rows_of(replica_b, "one") == (1, 64)
    assert await rows_of(replica_b, "two") == (1, 0)  # a copy: its fingerprint is kept, but it is no candidate


async def test_a_family_of_copies_offers_only_its_original_as_a_candidate(
    index: tuple[DuplicateIndex, DuplicateIndex],
) -> None:
    """A story syndicated a thousand times is scored against its original only, not against every copy so far."""
    replica_a, replica_b = index
    copies = [(f"copy-{n}", with_words_changed(SEED, random.Random(n))) for n in range(60)]
    async with replica_a.engine.begin() as connection:
        first = await replica_a.check_and_add_many(connection, [("original", SEED), *copies[:30]])
    async with replica_b.engine.begin() as connection:
        later = await replica_b.check_and_add_many(connection, copies[30:])
    assert [m.duplicate_of if m else None for m in first + later] == [None] + ["original"] * 60
    async with replica_a.engine.connect() as connection:
        indexed = (await connection.execute(sql("SELECT DISTINCT article_id FROM cleanup_lsh"))).scalars().all()
        fingerprints = await connection.scalar(sql("SELECT count(*) FROM cleanup_fingerprints"))
    assert indexed == ["original"]
    assert fingerprints == 61
    # A redelivered copy finds the same original, and stays out of the buckets.
    again = await replica_b.check_and_add("copy-7", copies[7][1])
    assert again is not None
    assert again.duplicate_of == "original"
    assert await rows_of(replica_b, "copy-7") == (1, 0)


def with_words_changed(text: str, rng: random.Random, count: int = 3) -> str:
    words = text.split(" ")
    for _ in range(count):
        words[rng.randrange(len(words))] = f"w{rng.randrange(10**9)}"
    return " ".join(words)


async def test_a_crowded_bucket_offers_its_first_candidates_and_copies_are_still_found(
    index: tuple[DuplicateIndex, DuplicateIndex],
) -> None:
    """Stories from one template share its buckets without being copies; a bucket offers at most
    BUCKET_CANDIDATES of them, and a copy is still found through the buckets of its own words."""
    replica_a, replica_b = index
    template = " ".join(f"t{n}" for n in range(50))  # a quarter of each story's word pairs: no copies of each other
    rng = random.Random(1)
    stories = [
        (f"story-{n:03}", template + " " + " ".join(f"o{rng.randrange(10**9)}" for _ in range(150)))
        for n in range(3 * near_duplicates.BUCKET_CANDIDATES)
    ]
    async with replica_a.engine.begin() as connection:
        assert await replica_a.check_and_add_many(connection, stories) == [None] * len(stories)
        crowded, members = (
            await connection.execute(
                sql("SELECT bucket, count(*) AS n FROM cleanup_lsh GROUP BY bucket ORDER BY n DESC LIMIT 1")
            )
        ).one()
        assert members > near_duplicates.BUCKET_CANDIDATES  # the template's
        in_order = await connection.scalars(
            sql("SELECT article_id FROM cleanup_lsh WHERE bucket = :bucket ORDER BY article_id"), {"bucket": crowded}
        )
        first = [(crowded, article_id) for article_id in in_order.all()[: near_duplicates.BUCKET_CANDIDATES]]
        offered = await replica_a._lsh.articles_in(connection, {crowded})
    assert sorted(offered) == first  # the same ones every time
    # The last story is past every crowded bucket's first candidates; its copy is found all the same.
    last_id, last_text = stories[-1]
    copy = await replica_b.check_and_add("copy-of-last", with_words_changed(last_text, random.Random(2)))
    assert copy is not None
    assert copy.duplicate_of == last_id


async def test_a_copy_is_no_candidate_in_its_own_batch_either(index: tuple[DuplicateIndex, DuplicateIndex]) -> None:
    """The same three articles give the same answers in one batch as one to a batch: B is a copy of A, and C shares
    B's text but is mostly its own story, so it is an original, not a copy of A through B."""
    replica_a, replica_b = index
    a = "\n\n".join(PARAGRAPHS)
    b = "\n\n".join(PARAGRAPHS[:2])
    c = "\n\n".join([*PARAGRAPHS[:2], *OTHER_STORY_SAME_SUBJECT.split("\n\n")])
    assert Fingerprint.of(c).containment(Fingerprint.of(b)) >= 0.45 > Fingerprint.of(c).containment(Fingerprint.of(a))
    async with replica_a.engine.begin() as connection:
        together = await replica_a.check_and_add_many(connection, [("a1", a), ("b1", b), ("c1", c)])
    assert await replica_a.forget_before(datetime.now(UTC) + timedelta(days=1)) == 3  # an empty index again
    apart = [await replica_b.check_and_add(article_id, text) for article_id, text in [("a2", a), ("b2", b), ("c2", c)]]
    assert [m.duplicate_of if m else None for m in together] == [None, "a1", None]
    assert [m.duplicate_of if m else None for m in apart] == [None, "a2", None]


async def test_a_redelivered_copy_finds_its_original_when_later_originals_fill_its_buckets(
    index: tuple[DuplicateIndex, DuplicateIndex], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket offers its first candidates by id, so originals that come later with smaller ids can push a copy's
    original out of every bucket they share; a replay of the copy must still name the same original."""
    replica_a, replica_b = index
    monkeypatch.setattr(near_duplicates, "BUCKET_CANDIDATES", 1)
    await replica_a.check_and_add("z-original", SEED)
    first = await replica_a.check_and_add("copy", respun(SEED))
    assert first is not None
    assert first.duplicate_of == "z-original"
    other = Fingerprint.of(OTHER_STORY_SAME_SUBJECT)  # a later original in every bucket of the first, with a smaller id
    async with replica_a.engine.begin() as connection:
        await connection.execute(
            insert(cleanup_fingerprints),
            {
                "article_id": "a-later",
                "signature": other.signature.tobytes(),
                "shingles": other.shingles,
                "first_seen_at": datetime.now(UTC),
            },
        )
        await connection.execute(
            sql("INSERT INTO cleanup_lsh (bucket, article_id) SELECT bucket, 'a-later' FROM cleanup_lsh")
        )
        assert {
            article_id
            for _, article_id in await replica_a._lsh.articles_in(connection, set(Fingerprint.of(SEED).buckets()))
        } == {"a-later"}
    assert await replica_b.check_and_add("copy", respun(SEED)) == first


async def test_the_candidates_fingerprints_are_read_however_many_there_are(
    index: tuple[DuplicateIndex, DuplicateIndex],
) -> None:
    """As one parameter: asyncpg binds at most 32,767 values to a statement, SQLite 32,766."""
    replica_a, _ = index
    await replica_a.check_and_add("known", SEED)
    async with replica_a.engine.connect() as connection:
        rows = await replica_a._lsh.fingerprints_of(connection, [f"id-{n}" for n in range(40_000)] + ["known"])
    assert [row.article_id for row in rows] == ["known"]


async def rows_of(index: DuplicateIndex, article_id: str) -> tuple[int, int]:
    """How many fingerprints and LSH rows ``article_id`` has in the index."""
    async with index.engine.connect() as connection:
        fingerprints = await connection.scalar(
            sql("SELECT count(*) FROM cleanup_fingerprints WHERE article_id = :id"), {"id": article_id}
        )
        buckets = await connection.scalar(
            sql("SELECT count(*) FROM cleanup_lsh WHERE article_id = :id"), {"id": article_id}
        )
    return fingerprints, buckets


async def test_articles_seen_long_ago_are_forgotten_and_their_copies_are_originals_again(
    index: tuple[DuplicateIndex, DuplicateIndex],
) -> None:
    replica_a, replica_b = index
    async with replica_a.engine.begin() as connection:
        await replica_a.check_and_add_many(connection, [("old", SEED), ("old-2", "\n\n".join(PARAGRAPHS[::-1]))])
        await connection.execute(sql("UPDATE cleanup_fingerprints SET first_seen_at = :at"), {"at": days_ago(40)})
    await replica_a.check_and_add("recent", OTHER_STORY_SAME_SUBJECT)
    assert await rows_of(replica_a, "old") == (1, 64)

    # One article to a transaction: the loop goes on until none is older.
    assert await replica_b.forget_before(days_ago(30), chunk=1) == 2
    assert await rows_of(replica_a, "old") == (0, 0)
    assert await rows_of(replica_a, "old-2") == (0, 0)
    assert await rows_of(replica_a, "recent") == (1, 64)
    assert await replica_b.forget_before(days_ago(30)) == 0

    assert await replica_a.check_and_add("copy-of-old", respun(SEED)) is None
    copy_of_recent = await replica_a.check_and_add("copy-of-recent", OTHER_STORY_SAME_SUBJECT + "\n\nShare this")
    assert copy_of_recent is not None
    assert copy_of_recent.duplicate_of == "recent"


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


@pytest.mark.parametrize("block", [None, 3], ids=["default-blocks", "blocks-of-3"])
def test_fingerprints_are_datasketch_s_own_signatures(block: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fingerprint hashes and permutes shingles in numpy, not through datasketch's per-item call; the signatures
    already stored in an index must stay what datasketch computes. Tiny blocks put every text across block edges."""
    from itertools import pairwise

    from datasketch import MinHash

    if block:
        monkeypatch.setattr(near_duplicates, "_HASHES_AT_ONCE", block)
    rng = random.Random(11)
    long_text = " ".join(f"w{rng.getrandbits(40):x}" for _ in range(40_000))  # more pairs than one block of hashes
    for text in (
        "The minister said the budget would pass on Tuesday.",
        "Ein Wort",
        "one",
        "Ünïcödé wörds here too",
        long_text,
    ):
        words = re.findall(r"\w+", text.lower())
        pairs = {f"{a} {b}".encode() for a, b in pairwise(words)} or {w.encode() for w in words}
        expected = MinHash(num_perm=128, seed=7, scheme="affine32")
        expected.update_batch(list(pairs))
        assert (Fingerprint.of(text).signature == expected.hashvalues.astype(np.uint64)).all()


def test_buckets_are_the_bands_hashes_the_index_already_stores() -> None:
    """The LSH rows already in an index were written as ``band:blake2b-8(the band's two rows)``: buckets computed
    any faster must stay those strings, or old articles would never be found again."""
    import hashlib

    for text in ("The minister said the budget would pass on Tuesday.", "Ünïcödé wörds here too", "one"):
        raw = Fingerprint.of(text).signature.tobytes()
        expected = [
            f"{band}:{hashlib.blake2b(raw[band * 16 : band * 16 + 16], digest_size=8).hexdigest()}"
            for band in range(64)
        ]
        assert Fingerprint.of(text).buckets() == expected


async def test_a_batch_is_fingerprinted_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The biggest articles take seconds to fingerprint: on the event loop that would hold up the consumer's
    heartbeats until its group dropped it and gave the same batch to a consumer again."""
    import threading

    threads: list[int] = []
    original = near_duplicates.Fingerprint.of.__func__

    def recording(cls: type[Fingerprint], text: str) -> Fingerprint:
        threads.append(threading.get_ident())
        return original(cls, text)

    monkeypatch.setattr(near_duplicates.Fingerprint, "of", classmethod(recording))
    url = f"sqlite+aiosqlite:///{tmp_path}/index.db"
    await upgrade(url)
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            matches = await DuplicateIndex(engine).check_and_add_many(connection, [("a", SEED), ("b", respun(SEED))])
    finally:
        await engine.dispose()
    assert matches[0] is None
    assert matches[1] is not None
    assert matches[1].duplicate_of == "a"
    assert len(threads) == 2
    assert threading.get_ident() not in threads


async def test_a_batch_forgets_what_is_older_than_kept_at_most_twice_its_size(database_url: str) -> None:
    """CLEANUP_DUPLICATE_DAYS: an article older than that is no match, and each batch forgets some of them."""
    await upgrade(database_url)
    engine = make_engine(database_url)
    index = DuplicateIndex(engine, 0.45, keep_days=7)
    olds = [(f"old-{n}", f"{SEED}\n\nUpdate number {n}.") for n in range(5)]
    async with engine.begin() as connection:
        await index.check_and_add_many(connection, olds)
        await connection.execute(sql("UPDATE cleanup_fingerprints SET first_seen_at = :at"), {"at": days_ago(8)})

    async with engine.begin() as connection:
        [match] = await index.check_and_add_many(connection, [("copy", respun(SEED))])
    assert match is None  # its originals are older than kept
    forgotten = [n for n in range(5) if await rows_of(index, f"old-{n}") == (0, 0)]
    assert forgotten == [0, 1]  # twice the batch of one, the oldest first
    assert await rows_of(index, "old-2") == (1, 0)  # a copy of old-0: in no bucket

    await index.check_and_add("another", OTHER_STORY_SAME_SUBJECT)
    assert [await rows_of(index, f"old-{n}") for n in range(5)] == [(0, 0)] * 4 + [(1, 0)]
    assert await rows_of(index, "copy") == (1, 64)
    await engine.dispose()


@pytest.mark.postgres
async def test_replicas_on_postgres_forget_different_articles_without_waiting(fresh_postgres: str) -> None:
    await upgrade(fresh_postgres)
    first, second = make_engine(fresh_postgres), make_engine(fresh_postgres)
    replica_a, replica_b = DuplicateIndex(first, keep_days=7), DuplicateIndex(second, keep_days=7)
    async with first.begin() as connection:
        await replica_a.check_and_add_many(connection, [(f"old-{n}", f"{SEED}\n\nUpdate {n}.") for n in range(4)])
        await connection.execute(sql("UPDATE cleanup_fingerprints SET first_seen_at = :at"), {"at": days_ago(8)})

    async with first.begin() as batch_a:
        assert await replica_a.forget_oldest(batch_a, days_ago(7), 2) == 2
        async with second.begin() as batch_b:  # while the first batch still holds its two
            assert await asyncio.wait_for(replica_b.forget_oldest(batch_b, days_ago(7), 4), timeout=5) == 2
    assert [await rows_of(replica_a, f"old-{n}") for n in range(4)] == [(0, 0)] * 4
    await first.dispose()
    await second.dispose()


@pytest.mark.parametrize("days", ["1e6", "inf", "nan", "-1"])
def test_a_window_no_batch_could_subtract_is_refused_at_start(days: str) -> None:
    # A date before year 1 would have failed every batch, and each article would have been dead-lettered.
    with pytest.raises(ValidationError, match="cleanup_duplicate_days"):
        CleanupSettings(cleanup_duplicate_days=days)


async def test_the_longest_window_allowed_still_runs_a_batch(database_url: str) -> None:
    await upgrade(database_url)
    engine = make_engine(database_url)
    index = DuplicateIndex(engine, keep_days=CleanupSettings(cleanup_duplicate_days=36_500).cleanup_duplicate_days)
    assert await index.check_and_add("one", SEED) is None
    assert (await index.check_and_add("two", respun(SEED))).duplicate_of == "one"  # type: ignore[union-attr]
    await engine.dispose()


@pytest.mark.postgres
async def test_two_replicas_handling_copies_at_the_same_moment_find_one_original(
    fresh_postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Syndicated copies come in bursts, on different partitions: under PostgreSQL's READ COMMITTED each replica read
    the index without the other's copy, not yet committed, and both copies became originals."""
    await upgrade(fresh_postgres)
    engines = [make_engine(fresh_postgres) for _ in range(2)]
    both_fingerprinted = asyncio.Barrier(2)
    to_thread = asyncio.to_thread

    async def then_together(function, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        done = await to_thread(function, *args, **kwargs)
        await both_fingerprinted.wait()  # both have their fingerprints: each goes on to read the index now
        return done

    monkeypatch.setattr(near_duplicates.asyncio, "to_thread", then_together)

    async def replica(engine: object, article_id: str, copy: str) -> near_duplicates.Match | None:
        index = DuplicateIndex(engine, 0.45)  # type: ignore[arg-type]
        async with index.engine.begin() as connection:
            [match] = await index.check_and_add_many(connection, [(article_id, copy)])
            await asyncio.sleep(0.2)  # the rest of cleanup's transaction (learning boilerplate) before the commit
        return match

    try:
        first, second = await asyncio.gather(replica(engines[0], "wire-a", SEED), replica(engines[1], "wire-b", SEED))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sorted([first is None, second is None]) == [False, True]  # one original, one copy of it
    copy = first or second
    assert copy is not None
    assert copy.duplicate_of in {"wire-a", "wire-b"}
