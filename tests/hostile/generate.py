"""Many hostile messages, reproducibly: the named kinds of :mod:`.records`, mutated at random with a seed."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from .records import GOOD_BODY, hostile_records

NASTY = ["\x00", "\ud800", "\udfff", "\u202e", "\u2066", "\u200b", "\ufeff", "\u0301", "😀", "<script>", "&#0;", "\\"]
FIELDS = ["id", "title", "text", "html", "url", "source", "published_at", "language", "metadata", "topics", "extra"]


def _nasty_string(rng: random.Random) -> str:
    pieces = [
        rng.choice(NASTY) if rng.random() < 0.3 else rng.choice(["word", " ", "\n", "ä", "x" * 50])
        for _ in range(rng.randint(0, 40))
    ]
    text = "".join(pieces)
    if rng.random() < 0.02:
        text *= rng.randint(10, 300)
    return text


def _nasty_value(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if roll < 0.45 or depth > 3:
        return _nasty_string(rng)
    if roll < 0.55:
        return rng.choice([None, True, 0, -1, 2**70, 1e308, float("nan"), float("inf"), 3.5])
    if roll < 0.75:
        return [_nasty_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_nasty_string(rng)[:30]: _nasty_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _encode(message: object, rng: random.Random) -> bytes:
    text = json.dumps(message, ensure_ascii=rng.random() < 0.5, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


def generated(count: int, seed: int = 20261202) -> Iterator[tuple[str, bytes]]:
    """``count`` hostile messages: each named kind once, then random mutations of a good article."""
    rng = random.Random(seed)
    named = list(hostile_records())
    for index in range(count):
        if index < len(named):
            yield named[index]
            continue
        roll = rng.random()
        if roll < 0.05:
            yield f"bytes-{index}", rng.randbytes(rng.randint(0, 300))
            continue
        article: dict[str, object] = {"id": f"gen-{index}", "title": "Generated", "text": GOOD_BODY}
        for field in rng.sample(FIELDS, rng.randint(1, 4)):
            article[field] = _nasty_value(rng)
        if rng.random() < 0.1:
            article.pop("id", None)
        yield f"mutated-{index}", _encode(article, rng)
