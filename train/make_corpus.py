"""Write the training corpus, train/corpus/topics.jsonl, from our sentence pools and the IPTC taxonomy.

    .venv/bin/python train/make_corpus.py [--per-desk 520] [--per-topic 160] [--per-language 50] [--seed 12]

Every row is {text, label, source, second?}: ``label`` a top-level QCode, ``second`` (when the text drifts
into another topic for a sentence) the topic it drifts into. Three sources, all ours or the IPTC's:

- ``pool``: news-like paragraphs, a lead and two to four details of one topic from :mod:`pools`, slots
  filled, sometimes a sentence any story carries, sometimes one sentence of another topic (a story's
  background drifting off its subject);
- ``iptc``: every IPTC topic's name and definition, labelled with its top-level ancestor (CC-BY-4.0);
- ``examples``: the hand-written example sentences the prototype classifier uses;
- ``pool-de``, ``pool-fr``, ``pool-es``: shorter paragraphs for the five desks in German, French and
  Spanish, from :mod:`pools_intl`;
- ``written``: whole articles (title, then body, as the service reads them) written for this corpus by
  writers who never saw the evaluation sets, one file per desk or group in ``corpus/written/``; each counts
  ``--written-weight`` times a pool paragraph in the loss, since it is what the service meets.

Deterministic: the same seed writes the same file.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from pools import GENERIC, POOLS, SLOTS  # noqa: E402
from pools_intl import INTL_POOLS  # noqa: E402

from newsflow_classify.examples import EXAMPLES  # noqa: E402
from newsflow_shared.taxonomy import load_taxonomy  # noqa: E402

DESKS = ["medtop:04000000", "medtop:01000000", "medtop:11000000", "medtop:15000000", "medtop:13000000"]
_SLOT = re.compile(r"\{(\w+)\}")


def fill(sentence: str, rng: random.Random) -> str:
    return _SLOT.sub(lambda m: rng.choice(SLOTS[m.group(1)]), sentence)


def paragraph(code: str, rng: random.Random, pools: dict = POOLS, drift: bool = True) -> dict:
    pool = pools[code]
    details = rng.sample(pool["details"], k=min(len(pool["details"]), rng.randint(2, 4)))
    sentences = [fill(pool["leads"][rng.randrange(len(pool["leads"]))], rng), *(fill(d, rng) for d in details)]
    if drift and rng.random() < 0.3:
        sentences.insert(rng.randint(1, len(sentences)), fill(rng.choice(GENERIC), rng))
    row: dict = {"label": code, "source": "pool"}
    if drift and rng.random() < 0.25:
        other = rng.choice([c for c in POOLS if c != code])
        sentences.insert(rng.randint(2, len(sentences)), fill(rng.choice(POOLS[other]["details"]), rng))
        row["second"] = other
    row["text"] = " ".join(sentences)
    return row


def iptc_rows() -> list[dict]:
    taxonomy = load_taxonomy()
    rows = []
    for topic in taxonomy.topics.values():
        root = taxonomy.root(topic.code)
        text = f"{topic.name}: {topic.definition}" if topic.definition else topic.name
        rows.append({"text": text, "label": root, "source": "iptc", "code": topic.code})
    return rows


def unique(make, wanted: int) -> list[dict]:
    rows: list[dict] = []
    seen: set[str] = set()
    for _ in range(wanted * 5):
        if len(seen) >= wanted:
            break
        row = make()
        if row["text"] not in seen:
            seen.add(row["text"])
            rows.append(row)
    return rows


def written_rows(folder: Path, weight: float) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                article = json.loads(line)
                row = {"text": f"{article['title']}.\n{article['text']}", "label": article["label"]}
                if article.get("second") and article["second"] != article["label"]:
                    row["second"] = article["second"]
                rows.append({**row, "source": "written", "id": article["id"], "weight": weight})
    return rows


def build(per_desk: int, per_topic: int, per_language: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows: list[dict] = []
    for code in POOLS:
        rows += unique(lambda code=code: paragraph(code, rng), per_desk if code in DESKS else per_topic)
    for language, pools in INTL_POOLS.items():
        for code in pools:
            made = unique(lambda code=code, pools=pools: paragraph(code, rng, pools, drift=False), per_language)
            rows += [{**row, "source": f"pool-{language}"} for row in made]
    rows += iptc_rows()
    rows += [{"text": s, "label": code, "source": "examples"} for code, ss in EXAMPLES.items() for s in ss]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-desk", type=int, default=520)
    parser.add_argument("--per-topic", type=int, default=160)
    parser.add_argument("--per-language", type=int, default=50, help="per desk, in each of de, fr, es")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--written", type=Path, default=HERE / "corpus" / "written")
    parser.add_argument("--written-weight", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=HERE / "corpus" / "topics.jsonl")
    args = parser.parse_args()
    rows = build(args.per_desk, args.per_topic, args.per_language, args.seed)
    rows += written_rows(args.written, args.written_weight)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} texts -> {args.out}")


if __name__ == "__main__":
    main()
