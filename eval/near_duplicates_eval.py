"""Near-duplicate detection on respun, shortened and padded copies, and on stories that must stay apart.

    .venv/bin/python eval/near_duplicates_eval.py

The originals are ``eval/cleanup/articles.jsonl`` (ours). Copies are made the ways content farms
and syndication make them: synonyms swapped, sentences and paragraphs reordered, paragraphs
dropped, cut to the first half, boilerplate added, and all of these at once. Negatives are
different stories on the same subject (``eval/cleanup/same_subject.jsonl``, ours) and stories
that quote one paragraph of an indexed article. Newsflow's index (word pairs, containment, the
service's database) is compared with plain MinHash-LSH on 3-word shingles at Jaccard 0.5.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datasketch import MinHash, MinHashLSH

from newsflow_cleanup.near_duplicates import DuplicateIndex, Fingerprint
from newsflow_cleanup.settings import CleanupSettings
from newsflow_shared.db import make_engine, upgrade

HERE = Path(__file__).parent / "cleanup"
SYNONYMS = {
    "said": "stated",
    "says": "states",
    "told": "informed",
    "new": "fresh",
    "big": "large",
    "large": "sizeable",
    "rose": "climbed",
    "fell": "dropped",
    "more": "additional",
    "people": "individuals",
    "city": "town",
    "town": "municipality",
    "country": "nation",
    "government": "administration",
    "week": "seven days",
    "began": "started",
    "begin": "start",
    "expected": "anticipated",
    "about": "roughly",
    "almost": "nearly",
    "many": "numerous",
    "most": "the majority of",
    "help": "assist",
    "show": "display",
    "shown": "displayed",
    "warned": "cautioned",
    "cut": "reduce",
    "biggest": "largest",
    "highest": "greatest",
    "first": "initial",
    "home": "house",
    "homes": "houses",
    "residents": "inhabitants",
    "workers": "employees",
    "company": "firm",
    "companies": "firms",
    "prices": "costs",
    "price": "cost",
    "jobs": "posts",
    "children": "kids",
    "said on": "stated on",
    "agreement": "deal",
    "talks": "negotiations",
    "decision": "ruling",
    "called": "described",
    "would": "will",
    "could": "might",
    "after": "following",
    "before": "prior to",
    "because": "as",
    "also": "too",
    "since": "from",
    "published": "released",
    "results": "findings",
    "found": "discovered",
    "scientists": "researchers",
    "evacuated": "moved out",
    "left": "departed",
    "returned": "went back",
    "record": "unprecedented",
    "strong": "robust",
    "weak": "feeble",
    "demand": "appetite",
    "costs": "expenses",
    "plan": "proposal",
    "reported": "recorded",
    "officials": "authorities",
    "announced": "declared",
    "closed": "shut",
    "close": "shut",
    "use": "employ",
    "used": "employed",
    "need": "require",
    "needed": "required",
    "group": "organisation",
}
BOILERPLATE = ["Advertisement", "Share this article", "Read more: Five things to know", "Follow us on Instagram"]
_SENTENCE = re.compile(r"(?<=[.!?\"])\s+(?=[A-Z\"])")


def respin(text: str, rng: random.Random, rate: float) -> str:
    """Swap ``rate`` of the words that have a synonym, as article spinners do."""

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        other = SYNONYMS.get(word.lower())
        if other is None or rng.random() >= rate:
            return word
        return other.capitalize() if word[0].isupper() else other

    return re.sub(r"[A-Za-z]+", swap, text)


def reorder_sentences(text: str, rng: random.Random) -> str:
    paragraphs = []
    for paragraph in text.split("\n\n"):
        sentences = _SENTENCE.split(paragraph)
        rng.shuffle(sentences)
        paragraphs.append(" ".join(sentences))
    rng.shuffle(paragraphs)
    return "\n\n".join(paragraphs)


def drop_paragraphs(text: str, rng: random.Random, keep: int) -> str:
    paragraphs = text.split("\n\n")
    kept = sorted(rng.sample(range(len(paragraphs)), min(keep, len(paragraphs))))
    return "\n\n".join(paragraphs[i] for i in kept)


def first_half(text: str) -> str:
    words = text.split(" ")
    return " ".join(words[: len(words) // 2])


def add_boilerplate(text: str, rng: random.Random) -> str:
    paragraphs = text.split("\n\n")
    for line in rng.sample(BOILERPLATE, 3):
        paragraphs.insert(rng.randrange(len(paragraphs) + 1), line)
    return "\n\n".join(paragraphs)


COPIES: dict[str, Callable[[str, random.Random], str]] = {
    "syndicated with boilerplate": add_boilerplate,
    "synonyms (half)": lambda t, r: respin(t, r, 0.5),
    "synonyms (all) + reordered": lambda t, r: reorder_sentences(respin(t, r, 1.0), r),
    "two paragraphs dropped": lambda t, r: drop_paragraphs(t, r, 3),
    "cut to the first half": lambda t, r: first_half(t),
    "everything at once": lambda t, r: add_boilerplate(
        reorder_sentences(respin(drop_paragraphs(t, r, 4), r, 0.5), r), r
    ),
    "all synonyms, first half, padded": lambda t, r: add_boilerplate(
        reorder_sentences(respin(first_half(t), r, 1.0), r), r
    ),
}


@dataclass(frozen=True)
class Case:
    kind: str
    article_id: str
    text: str
    expected: str | None  # the original it copies, or None for a story of its own


def build_cases(seed: int = 11) -> tuple[list[tuple[str, str]], list[list[Case]]]:
    """The originals, and the cases in runs: each run is checked against a fresh index of the originals.

    A quoting story and the plain story it is built from go to different runs, or the second
    would rightly be found a copy of the first.
    """
    rng = random.Random(seed)
    articles = [json.loads(line) for line in (HERE / "articles.jsonl").open(encoding="utf-8")]
    indexed, unseen = articles[:12], articles[12:]
    originals = [(a["id"], a["text"]) for a in indexed]
    cases = [
        Case(kind, f"{a['id']}/{kind}", make(a["text"], rng), a["id"]) for a in indexed for kind, make in COPIES.items()
    ]
    by_id = {a["id"]: a for a in articles}
    quoting: list[Case] = []
    for number, story in enumerate(json.loads(line) for line in (HERE / "same_subject.jsonl").open(encoding="utf-8")):
        cases.append(Case("same subject, other story", f"same-{number}", story["text"], None))
        quoted = rng.choice(by_id[story["about"]]["text"].split("\n\n"))
        paragraphs = story["text"].split("\n\n")
        paragraphs.insert(2, f'As one report put it: "{quoted}"')
        quoting.append(Case("same subject, quoting a paragraph", f"quote-{number}", "\n\n".join(paragraphs), None))
    for article in unseen:
        quoted = rng.choice(rng.choice(indexed)["text"].split("\n\n"))
        paragraphs = article["text"].split("\n\n")
        paragraphs.insert(1, quoted)
        cases.append(Case("other story quoting a paragraph", f"{article['id']}/quoting", "\n\n".join(paragraphs), None))
    return originals, [cases, quoting]


async def newsflow(originals: list[tuple[str, str]], cases: list[Case]) -> list[str | None]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/eval.db"
        await upgrade(url)
        engine = make_engine(url)
        index = DuplicateIndex(engine, CleanupSettings().cleanup_duplicate_threshold)
        for article_id, text in originals:
            await index.check_and_add(article_id, text)
        found = [await index.check_and_add(case.article_id, case.text) for case in cases]
        await engine.dispose()
    return [match.duplicate_of if match else None for match in found]


def margins(originals: list[tuple[str, str]], cases: list[Case]) -> dict[str, list[float]]:
    """Each case's best containment in any original, found or not: how far apart copies and others lie."""
    prints = [Fingerprint.of(text) for _, text in originals]
    scores: dict[str, list[float]] = {"copies": [], "others": []}
    for case in cases:
        mine = Fingerprint.of(case.text)
        scores["copies" if case.expected else "others"].append(max(mine.containment(p) for p in prints))
    return scores


def plain_minhash(originals: list[tuple[str, str]], cases: list[Case]) -> list[str | None]:
    """3-word shingles, Jaccard 0.5, first hit: the textbook set-up."""
    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    family: dict[str, str] = {}

    def signature(text: str) -> MinHash:
        words = re.findall(r"\w+", text.lower())
        minhash = MinHash(num_perm=128, seed=7)
        minhash.update_batch([" ".join(words[i : i + 3]).encode() for i in range(max(1, len(words) - 2))])
        return minhash

    for article_id, text in originals:
        lsh.insert(article_id, signature(text))
    answers = []
    for case in cases:
        minhash = signature(case.text)
        hits = sorted(lsh.query(minhash))
        answer = family.get(hits[0], hits[0]) if hits else None
        answers.append(answer)
        family[case.article_id] = answer or case.article_id
        lsh.insert(case.article_id, minhash)
    return answers


def report(name: str, cases: list[Case], answers: list[str | None]) -> None:
    true_positive = sum(a == c.expected for c, a in zip(cases, answers, strict=True) if c.expected)
    false_positive = sum(a is not None and a != c.expected for c, a in zip(cases, answers, strict=True))
    positives = sum(c.expected is not None for c in cases)
    precision = true_positive / (true_positive + false_positive) if true_positive + false_positive else 1.0
    print(f"{name:32} precision {precision:.3f}  recall {true_positive / positives:.3f}")
    for kind in dict.fromkeys(c.kind for c in cases):
        mine = [(c, a) for c, a in zip(cases, answers, strict=True) if c.kind == kind]
        right = sum(a == c.expected for c, a in mine)
        print(f"    {kind:34} {right:3}/{len(mine)} right")


def main() -> None:
    originals, runs = build_cases()
    cases = [case for run in runs for case in run]
    print(f"{len(originals)} originals indexed; {len(cases)} articles checked\n")
    baseline = [answer for run in runs for answer in plain_minhash(originals, run)]
    report("plain MinHash-LSH (3-shingles)", cases, baseline)
    ours = [answer for run in runs for answer in asyncio.run(newsflow(originals, run))]
    report("newsflow (pairs + containment)", cases, ours)
    spread = margins(originals, cases)
    print(
        f"\ncontainment: copies {min(spread['copies']):.2f}-{max(spread['copies']):.2f},"
        f" other stories {min(spread['others']):.2f}-{max(spread['others']):.2f}"
        f" (threshold CLEANUP_DUPLICATE_THRESHOLD={CleanupSettings().cleanup_duplicate_threshold})"
    )


if __name__ == "__main__":
    main()
