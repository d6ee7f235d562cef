"""Near-duplicates: syndicated and respun copies of a story, found with MinHash and LSH.

Fingerprints are MinHash signatures of word pairs (bigrams) of the clean text: reordered
sentences keep most pairs, a swapped synonym breaks only two. Candidates come from LSH
buckets (64 bands of 2 rows, so even a Jaccard of 0.3 is found almost surely); each is
then scored by *containment*: the share of the smaller text found in the larger. That is
what makes a copy cut to its first half a duplicate (its Jaccard with the whole is only
about 0.5) while a different story quoting one paragraph is not (most of it is its own).

The index lives in the database, so every replica shares it and it survives restarts.
``duplicate_of`` always names the first article seen of a family.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise

import numpy as np
from datasketch import MinHash
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from newsflow_shared import TemporaryFailure
from newsflow_shared.db.engine import dialect_insert
from newsflow_shared.db.tables import cleanup_fingerprints, cleanup_lsh

NUM_PERM = 128
BANDS, ROWS = 64, 2
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    signature: np.ndarray
    shingles: int

    @classmethod
    def of(cls, text: str) -> Fingerprint:
        words = _WORD.findall(text.lower())
        pairs = {f"{a} {b}".encode() for a, b in pairwise(words)} or {w.encode() for w in words}
        minhash = MinHash(num_perm=NUM_PERM, seed=7)
        minhash.update_batch(list(pairs))
        return cls(signature=minhash.hashvalues.astype(np.uint64), shingles=len(pairs))

    def buckets(self) -> list[str]:
        return [
            f"{band}:"
            + hashlib.blake2b(self.signature[band * ROWS : (band + 1) * ROWS].tobytes(), digest_size=8).hexdigest()
            for band in range(BANDS)
        ]

    def containment(self, other: Fingerprint) -> float:
        """Estimated share of the smaller text's word pairs that the other one has too."""
        if not self.shingles or not other.shingles:
            return 0.0
        jaccard = float(np.mean(self.signature == other.signature))
        shared = jaccard * (self.shingles + other.shingles) / (1 + jaccard)
        return min(1.0, shared / min(self.shingles, other.shingles))


@dataclass(frozen=True, slots=True)
class Match:
    duplicate_of: str
    score: float


class DuplicateIndex:
    """Finds the first-seen article an article near-duplicates, and remembers the article."""

    def __init__(self, engine: AsyncEngine, threshold: float = 0.5) -> None:
        self.engine = engine
        self.threshold = threshold
        self._insert = dialect_insert(engine)

    async def check_and_add(self, article_id: str, text: str) -> Match | None:
        fingerprint = Fingerprint.of(text)
        buckets = fingerprint.buckets()
        try:
            async with self.engine.begin() as connection:
                own = (
                    await connection.execute(
                        select(cleanup_fingerprints.c.first_seen_at).where(
                            cleanup_fingerprints.c.article_id == article_id
                        )
                    )
                ).first()
                seen_at = own.first_seen_at if own else datetime.now(UTC)
                candidates = select(cleanup_lsh.c.article_id).where(cleanup_lsh.c.bucket.in_(buckets)).distinct()
                rows = await connection.execute(
                    select(cleanup_fingerprints).where(
                        cleanup_fingerprints.c.article_id.in_(candidates),
                        cleanup_fingerprints.c.article_id != article_id,
                    )
                )
                match = self._best(fingerprint, rows, seen_at if own else None)
                if own is None:
                    await connection.execute(
                        self._insert(cleanup_fingerprints)
                        .values(
                            article_id=article_id,
                            signature=fingerprint.signature.tobytes(),
                            shingles=fingerprint.shingles,
                            duplicate_of=match.duplicate_of if match else None,
                            first_seen_at=seen_at,
                        )
                        .on_conflict_do_nothing()
                    )
                    await connection.execute(
                        self._insert(cleanup_lsh).on_conflict_do_nothing(),
                        [{"bucket": bucket, "article_id": article_id} for bucket in buckets],
                    )
        except (OperationalError, DBAPIError, OSError) as error:
            raise TemporaryFailure(f"the near-duplicate index is not reachable: {error}") from error
        return match

    def _best(self, fingerprint: Fingerprint, rows: object, seen_before: datetime | None) -> Match | None:
        best: tuple[float, datetime, str] | None = None
        for row in rows:  # type: ignore[attr-defined]
            if seen_before is not None and _aware(row.first_seen_at) >= _aware(seen_before):
                continue  # on a redelivery only articles seen earlier can be the original
            score = fingerprint.containment(Fingerprint(np.frombuffer(row.signature, dtype=np.uint64), row.shingles))
            if score < self.threshold:
                continue
            first = row.duplicate_of or row.article_id
            key = (score, _aware(row.first_seen_at), first)
            if best is None or score > best[0] + 1e-9 or (abs(score - best[0]) < 1e-9 and key[1] < best[1]):
                best = key
        return Match(duplicate_of=best[2], score=round(best[0], 4)) if best else None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
