"""Near-duplicates: syndicated and respun copies of a story, found with MinHash and LSH.

Fingerprints are MinHash signatures of word pairs (bigrams) of the clean text: reordered
sentences keep most pairs, a swapped synonym breaks only two. Candidates come from LSH
buckets (64 bands of 2 rows, so even a Jaccard of 0.3 is found almost surely); each is
then scored by *containment*: the share of the smaller text found in the larger. That is
what makes a copy cut to its first half a duplicate (its Jaccard with the whole is only
about 0.5) while a different story quoting one paragraph is not (most of it is its own).
On our evaluation set (``eval/near_duplicates_eval.py``) copies score 0.48-1.0 against their
original and other stories at most 0.34; a short story on the same subject quoting a long
paragraph (in the unit tests) scores 0.41. The default threshold of 0.45 sits in that gap. A
second signature of single words was tried; it moved copies and quoting stories up alike, so it
was not kept.

The index lives in the database, so every replica shares it and it survives restarts.
``duplicate_of`` always names the first article seen of a family. A batch is looked up
and added in a few statements, its articles compared with each other in memory. Articles
first seen longer ago than ``CLEANUP_DUPLICATE_DAYS`` are forgotten as batches go
(:meth:`DuplicateIndex.forget_oldest`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import numpy as np
from datasketch import MinHash
from sqlalchemy import ARRAY, Row, String, any_, bindparam, cast, delete, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from newsflow_shared.db.engine import as_utc, dialect_insert, is_sqlite
from newsflow_shared.db.tables import cleanup_fingerprints

NUM_PERM = 128
BANDS, ROWS = 64, 2
BUCKET_CANDIDATES = 20
"""The most articles one bucket offers as candidates. Stories written from one template (results, earnings, weather)
share the template's buckets without being copies of each other, so those buckets grow with every such story; a copy
of one of them is still found through the buckets of its own words. Unbounded, each new one was scored against all
before it: 14.6 ms per article with 10,000 such stories known, 28.8 with 20,000, against 1.5 and 1.8 now, every copy
found either way (``bench/near_duplicates.py --feed templated``)."""
_BAND_PREFIXES = [f"{band}:" for band in range(BANDS)]  # a bucket is its band, then its rows' hash
_blake2b = hashlib.blake2b
_WORD = re.compile(r"\w+", re.UNICODE)
# The scheme is named so that a datasketch release with another default cannot change the signatures already
# stored; its permutations are drawn once here, not for every article (a third of the fingerprint's time).
_SCHEME = "affine32"
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=7, scheme=_SCHEME).permutations
try:
    # CPython's own SHA-1, the same digest as hashlib's OpenSSL one: for a ten-byte word pair OpenSSL's setup of
    # each hash costs more than the hash, and this one took 0.10 ms per article's 185 pairs against 0.17.
    from _sha1 import sha1 as _sha1
except ImportError:  # a Python built without it
    from hashlib import sha1 as _sha1


_DIGEST = type(_sha1(b"")).digest
_WORDS_PER_DIGEST = 5  # a SHA-1 digest is 20 bytes: five 32-bit words
# Permuting a batch of hashes takes a (hashes x NUM_PERM) array: a 2 MB article of distinct words (300,000 pairs) took
# 360 MiB at once. In blocks of this many it takes ~16 MiB a block and gives the same signature, since the signature is
# the minimum over all of them.
_HASHES_AT_ONCE = 16_384
_A, _B = _PERMUTATIONS  # uint32: the affine32 scheme permutes each mixed hash h to a * h + b, modulo 2 ** 32
_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))


def _sha1_hash32(shingles: set[bytes]) -> np.ndarray:
    """datasketch's default hash of each shingle (the first 4 bytes of its SHA-1, little-endian), in one pass:
    a Python call per shingle was the other third. The digests are joined whole and every fifth word taken,
    which costs less than cutting each digest to 4 bytes in Python (97 against 115 µs for 185 pairs)."""
    digests = b"".join(map(_DIGEST, map(_sha1, shingles)))
    return np.frombuffer(digests, dtype="<u4")[::_WORDS_PER_DIGEST]


def _affine32_signature(hashes: np.ndarray) -> np.ndarray:
    """What ``MinHash(scheme="affine32").update_batch`` makes of ``hashes``, without its call of the hash function
    for each of them and the list it builds: 41 against 100 µs for an article's 185 pairs.

    The affine32 scheme mixes each hash once with MurmurHash3's finalizer, then permutes it, the uint32 arithmetic
    wrapping as the scheme intends. ``test_fingerprints_are_datasketch_s_own_signatures`` holds it to datasketch's.
    """
    shift1, multiply1, shift2, multiply2, shift3 = _FMIX32
    signature = np.full(NUM_PERM, np.iinfo(np.uint32).max, dtype=np.uint32)
    for start in range(0, len(hashes), _HASHES_AT_ONCE):  # each block keeps the minimum of those before it
        mixed = hashes[start : start + _HASHES_AT_ONCE]
        mixed = (mixed ^ (mixed >> shift1)) * multiply1
        mixed = (mixed ^ (mixed >> shift2)) * multiply2
        mixed ^= mixed >> shift3
        np.minimum(signature, (mixed[:, None] * _A + _B).min(axis=0), out=signature)
    return signature.astype(np.uint64)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    signature: np.ndarray
    shingles: int

    @classmethod
    def of(cls, text: str) -> Fingerprint:
        words = _WORD.findall(text.lower())
        pairs = {f"{a} {b}".encode() for a, b in pairwise(words)} or {w.encode() for w in words}
        return cls(signature=_affine32_signature(_sha1_hash32(pairs)), shingles=len(pairs))

    @classmethod
    def stored(cls, signature: bytes, shingles: int) -> Fingerprint:
        """A fingerprint as the index stores it: the signature's ``tobytes()``."""
        return cls(signature=np.frombuffer(signature, dtype=np.uint64), shingles=shingles)

    def buckets(self) -> list[str]:
        raw, width = self.signature.tobytes(), ROWS * self.signature.itemsize
        return [
            prefix + _blake2b(raw[start : start + width], digest_size=8).hexdigest()
            for prefix, start in zip(_BAND_PREFIXES, range(0, BANDS * width, width), strict=True)
        ]

    def containment(self, other: Fingerprint) -> float:
        """Estimated share of the smaller text's word pairs that the other one has too."""
        return float(self.containment_in(np.stack([other.signature]), np.array([other.shingles]))[0])

    def containment_in(self, signatures: np.ndarray, shingles: np.ndarray) -> np.ndarray:
        """:meth:`containment` against many fingerprints at once (rows of ``signatures``).

        One array operation instead of a call per candidate: loose LSH bands can bring back
        hundreds of candidates for an article on a busy story.
        """
        jaccard = (signatures == self.signature).mean(axis=1)
        shared = jaccard * (self.shingles + shingles) / (1 + jaccard)
        smaller = np.minimum(self.shingles, shingles)
        return np.where(smaller > 0, np.minimum(1.0, shared / np.maximum(smaller, 1)), 0.0)


def _fingerprints(texts: list[str]) -> tuple[list[Fingerprint], list[frozenset[str]]]:
    """Each text's fingerprint and its LSH buckets."""
    prints = [Fingerprint.of(text) for text in texts]
    return prints, [frozenset(p.buckets()) for p in prints]


@dataclass(frozen=True, slots=True)
class Match:
    duplicate_of: str
    score: float


@dataclass
class _Known:
    """An article already in the index (or earlier in the batch)."""

    article_id: str
    fingerprint: Fingerprint
    duplicate_of: str | None
    first_seen_at: datetime
    buckets: frozenset[str]


class _LshTable:
    """The LSH table's bulk statements, each taking the batch's values as one parameter.

    Only originals are in it. A copy is found through its family's first article, which is what it is then named a
    copy of; its fingerprint is kept (for a redelivery and for forgetting) but is no candidate. Indexed too, every copy
    of a widely syndicated story was fetched and scored again for each new one: with 5,000 copies of five stories
    known, 14.4 ms per article on SQLite, 30.6 with 10,000, against 0.5 now (``bench/near_duplicates.py --feed
    syndicated``). On PostgreSQL a batch of 100 took 2.4 s with 3,000 copies of one story known; with 33,000 the
    candidates' ids passed the 32,767 values a statement binds, and every batch holding a copy failed as if the
    database were down.

    A batch of 100 articles looks up and adds 6,400 buckets. As 6,400 bound values, SQLAlchemy's work per value
    cost more than the database's: the lookup and the insert took 1.0 ms per article on SQLite, 0.4 this way (500
    of the benchmark's articles, batches of 100). SQLite reads the values from a JSON array, PostgreSQL from arrays.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.sqlite = is_sqlite(engine)

    async def articles_in(self, connection: AsyncConnection, buckets: set[str]) -> list[tuple[str, str]]:
        """``(bucket, article id)`` of the known articles in any of ``buckets``, at most :data:`BUCKET_CANDIDATES`
        from each (the first by id, so the same ones each time)."""
        if self.sqlite:
            # SQLite has no LATERAL: each bucket's first id past the most, then the rows before it, both read
            # through the primary key (21 ms for 5,400 buckets, some crowded, where reading them whole took 64 and a
            # window over them 98). "LIMIT -1" keeps SQLite from folding the CTE into the join, which ran the
            # subquery per row of a bucket (202 ms); "AS MATERIALIZED" says the same only from SQLite 3.35.
            query = (
                "WITH wanted AS (SELECT value AS bucket, (SELECT article_id FROM cleanup_lsh WHERE bucket = value"
                " ORDER BY article_id LIMIT 1 OFFSET :most) AS past FROM json_each(:buckets) LIMIT -1)"
                " SELECT l.bucket, l.article_id FROM wanted JOIN cleanup_lsh AS l ON l.bucket = wanted.bucket"
                " AND (wanted.past IS NULL OR l.article_id < wanted.past)"
            )
            values: object = json.dumps(sorted(buckets))
        else:
            query = (
                "SELECT b.bucket, l.article_id FROM unnest(CAST(:buckets AS varchar[])) AS b(bucket) CROSS JOIN LATERAL"
                " (SELECT article_id FROM cleanup_lsh WHERE cleanup_lsh.bucket = b.bucket ORDER BY article_id"
                " LIMIT :most) AS l"
            )
            values = sorted(buckets)
        found = await connection.execute(text(query), {"buckets": values, "most": BUCKET_CANDIDATES})
        return [(row.bucket, row.article_id) for row in found]

    async def fingerprints_of(self, connection: AsyncConnection, ids: Iterable[str]) -> Sequence[Row[Any]]:
        """The stored fingerprints of ``ids``, as one parameter: there may be more of them than a statement binds."""
        columns = cleanup_fingerprints.c
        if self.sqlite:
            where = columns.article_id.in_(select(text("value")).select_from(text("json_each(:ids)")))
            values: object = json.dumps(sorted(ids))
        else:
            where = columns.article_id == any_(cast(bindparam("ids"), ARRAY(String)))
            values = sorted(ids)
        return (await connection.execute(select(cleanup_fingerprints).where(where), {"ids": values})).all()

    async def add(self, connection: AsyncConnection, rows: list[tuple[str, str]]) -> None:
        """Add ``(bucket, article id)`` rows; those already there (a redelivery, another replica) are kept."""
        # "WHERE true" tells SQLite's parser that ON CONFLICT belongs to the INSERT, not to a join.
        await self._with_pairs(
            connection, rows, "INSERT INTO cleanup_lsh (bucket, article_id) {pairs} WHERE true ON CONFLICT DO NOTHING"
        )

    async def remove(self, connection: AsyncConnection, rows: list[tuple[str, str]]) -> None:
        """Remove ``(bucket, article id)`` rows, each found through the primary key (there is no index on the id)."""
        await self._with_pairs(connection, rows, "DELETE FROM cleanup_lsh WHERE (bucket, article_id) IN ({pairs})")

    async def _with_pairs(self, connection: AsyncConnection, rows: list[tuple[str, str]], statement: str) -> None:
        """Run ``statement``, its ``{pairs}`` a SELECT of ``rows`` from one parameter: a JSON array in SQLite, two
        arrays in PostgreSQL."""
        if self.sqlite:
            pairs = "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:rows)"
            await connection.execute(text(statement.format(pairs=pairs)), {"rows": json.dumps(rows)})
        else:
            pairs = "SELECT * FROM unnest(CAST(:buckets AS varchar[]), CAST(:ids AS varchar[]))"
            await connection.execute(
                text(statement.format(pairs=pairs)),
                {"buckets": [bucket for bucket, _ in rows], "ids": [article for _, article in rows]},
            )


INDEX_LOCK_ID = 0x6E646570  # "ndep": PostgreSQL's advisory lock of the near-duplicate index (migrations use "news")


class DuplicateIndex:
    """Finds the first-seen article each article near-duplicates, and remembers the articles."""

    def __init__(self, engine: AsyncEngine, threshold: float = 0.45, keep_days: float = 0) -> None:
        self.engine = engine
        self.threshold = threshold
        self.keep_days = keep_days  # 0: for ever
        self._insert = dialect_insert(engine)
        self._lsh = _LshTable(engine)

    async def check_and_add(self, article_id: str, text: str) -> Match | None:
        async with self.engine.begin() as connection:
            [match] = await self.check_and_add_many(connection, [(article_id, text)])
        return match

    async def check_and_add_many(self, connection: AsyncConnection, items: list[tuple[str, str]]) -> list[Match | None]:
        """One match (or None) per ``(article id, clean text)``, in order; later items may match earlier ones.

        With ``keep_days``, articles first seen longer ago are no match, and up to twice the batch's size of them
        are forgotten in the same transaction (see :meth:`forget_oldest`)."""
        # In a thread: a batch of the biggest articles ingest accepts (2 MiB each, up to a 64 MiB fetch) takes
        # seconds to fingerprint, and the event loop must go on sending the consumer's heartbeats meanwhile, or
        # the group drops the consumer and hands the same batch over again (and again).
        prints, buckets = await asyncio.to_thread(_fingerprints, [text for _, text in items])
        if self._lsh.sqlite:
            now = datetime.now(UTC)  # SQLite's one writer orders the replicas already
        else:
            # One replica at a time from here to its commit. Under PostgreSQL's READ COMMITTED two replicas each
            # read the index without the other's uncommitted copy, and two copies of one wire story handled at the
            # same moment both became originals. The fingerprints above are the costly part, made before the wait.
            # The time is the server's, read after the wait: what the replica before committed is earlier, and a
            # candidate, however the replicas' own clocks differ.
            now = (
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:id), clock_timestamp()"), {"id": INDEX_LOCK_ID}
                )
            ).one()[1]
        kept_since = now - timedelta(days=self.keep_days) if self.keep_days else None
        ids = [article_id for article_id, _ in items]
        columns = cleanup_fingerprints.c
        stored: dict[str, datetime] = {}
        # A redelivered copy (a replay, a batch handed over again) is compared with the original it was found a copy
        # of, whether or not its buckets still offer it: a bucket offers its first few by id, and originals that came
        # later with smaller ids can have pushed it out of every one it shares with the copy.
        original_of: dict[str, str] = {}
        for row in await connection.execute(
            select(columns.article_id, columns.first_seen_at, columns.duplicate_of).where(columns.article_id.in_(ids))
        ):
            stored[row.article_id] = as_utc(row.first_seen_at)
            if row.duplicate_of:
                original_of[row.article_id] = row.duplicate_of
        # The buckets the batch shares with known articles first, then each such article's fingerprint once: joined
        # in one query, a copy sharing all 64 buckets came back 64 times, signature and all.
        shared_buckets: dict[str, set[str]] = {}
        for bucket, known_id in await self._lsh.articles_in(connection, set().union(*buckets)):
            shared_buckets.setdefault(known_id, set()).add(bucket)
        known: dict[str, _Known] = {}
        if shared_buckets or original_of:
            for row in await self._lsh.fingerprints_of(connection, shared_buckets.keys() | original_of.values()):
                known[row.article_id] = _Known(
                    row.article_id,
                    Fingerprint.stored(row.signature, row.shingles),
                    row.duplicate_of,
                    as_utc(row.first_seen_at),
                    frozenset(shared_buckets.get(row.article_id, ())),
                )

        # Which known articles are in each bucket: an article's candidates in 64 lookups, not a scan of them all.
        by_bucket: dict[str, list[str]] = {}
        for other in known.values():
            for bucket in other.buckets:
                by_bucket.setdefault(bucket, []).append(other.article_id)
        matches: list[Match | None] = []
        new_rows: list[dict[str, object]] = []
        for position, (article_id, fingerprint, own_buckets) in enumerate(zip(ids, prints, buckets, strict=True)):
            # Strictly increasing within the batch, so a redelivery finds the same earlier articles.
            first_seen = now + timedelta(microseconds=position)
            seen_at = stored.get(article_id, first_seen)
            sharing = {other for bucket in own_buckets for other in by_bucket.get(bucket, ())}
            if article_id in original_of and original_of[article_id] in known:
                sharing.add(original_of[article_id])
            pool = [known[other] for other in sorted(sharing) if other != article_id]
            # On a redelivery only articles seen earlier can be the original.
            pool = [
                k for k in pool if k.first_seen_at < seen_at or (article_id not in stored and k.first_seen_at <= now)
            ]
            if kept_since:  # not yet forgotten, but no longer kept
                pool = [k for k in pool if k.first_seen_at >= kept_since]
            match = self._best(fingerprint, pool)
            matches.append(match)
            if article_id not in stored and article_id not in known:  # not twice when a batch repeats an article
                duplicate_of = match.duplicate_of if match else None
                new_rows.append(
                    {
                        "article_id": article_id,
                        "signature": fingerprint.signature.tobytes(),
                        "shingles": fingerprint.shingles,
                        "duplicate_of": duplicate_of,
                        "first_seen_at": first_seen,
                    }
                )
                known[article_id] = _Known(article_id, fingerprint, duplicate_of, first_seen, own_buckets)
                if duplicate_of is None:  # only originals are candidates (see _LshTable)
                    for bucket in own_buckets:
                        by_bucket.setdefault(bucket, []).append(article_id)
        if new_rows:
            await connection.execute(self._insert(cleanup_fingerprints).on_conflict_do_nothing(), new_rows)
            await self._lsh.add(
                connection,
                [
                    (bucket, str(row["article_id"]))
                    for row in new_rows
                    if row["duplicate_of"] is None
                    for bucket in known[str(row["article_id"])].buckets
                ],
            )
        if kept_since:
            await self.forget_oldest(connection, kept_since, 2 * len(items))
        return matches

    async def forget_before(self, before: datetime, chunk: int = 500) -> int:
        """Forget every article first seen before ``before``, ``chunk`` to a transaction; returns how many.

        For ``newsflow cleanup forget-duplicates --older-than-days``. The service needs no such sweep: with
        ``keep_days`` each batch forgets as it goes."""
        forgotten = 0
        while True:
            async with self.engine.begin() as connection:
                count = await self.forget_oldest(connection, before, chunk)
            forgotten += count
            if count < chunk:
                return forgotten

    async def forget_oldest(self, connection: AsyncConnection, before: datetime, limit: int) -> int:
        """Forget up to ``limit`` of the articles first seen before ``before``, oldest first; returns how many.

        Why: kept for ever, the index grows with every article, and so does each batch's cost. An article's 64
        bucket rows land all over the table's B-tree, so the pages a batch writes grow with it
        (``bench/near_duplicates.py``), and so does the database. Copies of a story come within days. Forgetting
        in the batch's own transaction, at most twice what it adds, keeps the cost steady, with no second writer
        beside the batches (SQLite has one writer; it would have made batches wait or fail). Replicas on
        PostgreSQL skip the rows another one is forgetting. A later copy of a forgotten article is an original
        again; the ``duplicate_of`` already stored stays as it is.
        """
        columns = cleanup_fingerprints.c
        rows = (
            await connection.execute(
                select(columns.article_id, columns.signature)
                .where(columns.first_seen_at < before)
                .order_by(columns.first_seen_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not rows:
            return 0
        # The buckets come from the signature, as when the article was added.
        await self._lsh.remove(
            connection,
            [(bucket, row.article_id) for row in rows for bucket in Fingerprint.stored(row.signature, 0).buckets()],
        )
        await connection.execute(
            delete(cleanup_fingerprints).where(columns.article_id.in_([row.article_id for row in rows]))
        )
        return len(rows)

    def _best(self, fingerprint: Fingerprint, pool: list[_Known]) -> Match | None:
        if not pool:
            return None
        scores = fingerprint.containment_in(
            np.stack([k.fingerprint.signature for k in pool]), np.array([k.fingerprint.shingles for k in pool])
        )
        best: tuple[float, datetime, str] | None = None
        for candidate, score in zip(pool, scores.tolist(), strict=True):
            if score < self.threshold:
                continue
            key = (score, candidate.first_seen_at, candidate.duplicate_of or candidate.article_id)
            if best is None or score > best[0] + 1e-9 or (abs(score - best[0]) < 1e-9 and key[1] < best[1]):
                best = key
        return Match(duplicate_of=best[2], score=round(best[0], 4)) if best else None
