"""Do the evaluation articles share wording with what the model was trained on? A mechanical check.

    .venv/bin/python eval/overlap.py [--data eval/newsroom-dev.jsonl eval/newsroom-test.jsonl ...]

An article and a training text overlap by the share of 8-word shingles (lower-cased words) they have in
common, out of the smaller of the two sets: a training paragraph copied into an article, or an article
copied into training, gives 1.0, two texts on the same subject in their own words well under 0.1. Every
article is compared with every training text (train/corpus/topics.jsonl: our paragraphs, the IPTC
definitions and the prototype examples) and the dev and test sets with each other; the largest value
and the pair are printed. ``tests/unit/test_eval_overlap.py`` fails above :data:`LIMIT`.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).parents[1]
CORPUS = ROOT / "train" / "corpus" / "topics.jsonl"
SETS = [
    ROOT / "eval" / name
    for name in (
        "newsroom-dev.jsonl",
        "newsroom-test.jsonl",
        "other-topics-test.jsonl",
        "multilingual-dev.jsonl",
        "multilingual-test.jsonl",
    )
]
SIZE = 8
LIMIT = 0.2
_WORD = re.compile(r"\w+")


def shingles(text: str, size: int = SIZE) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def article_text(row: dict) -> str:
    return f"{row.get('title', '')}.\n{row['text']}"


def training_texts() -> list[str]:
    from newsflow_classify.examples import EXAMPLES

    texts = [row["text"] for row in read(CORPUS)]
    return texts + [s for sentences in EXAMPLES.values() for s in sentences]


def worst_overlap(articles: list[str], references: list[str]) -> tuple[float, int, int]:
    """(largest containment, article index, reference index) over every pair that shares a shingle."""
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    sizes = []
    for j, text in enumerate(references):
        found = shingles(text)
        sizes.append(len(found))
        for s in found:
            index[s].append(j)
    worst = (0.0, -1, -1)
    for i, text in enumerate(articles):
        own = shingles(text)
        shared = Counter(j for s in own for j in index.get(s, ()))
        for j, count in shared.items():
            value = count / max(1, min(len(own), sizes[j]))
            if value > worst[0]:
                worst = (value, i, j)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, nargs="+", default=[p for p in SETS if p.exists()])
    args = parser.parse_args()
    training = training_texts()
    sets = {path.name: [article_text(r) for r in read(path)] for path in args.data}
    for name, articles in sets.items():
        value, _, _ = worst_overlap(articles, training)
        print(f"{name}: {len(articles)} articles vs {len(training)} training texts: largest containment {value:.3f}")
    names = list(sets)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            value, _, _ = worst_overlap(sets[names[a]], sets[names[b]])
            print(f"{names[a]} vs {names[b]}: largest containment {value:.3f}")


if __name__ == "__main__":
    main()
