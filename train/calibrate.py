"""Calibrate the trained head's prior on the development set: how much more often a story is one of the five
desks' topics than the training corpus, with its even spread over 17 topics, suggests.

    .venv/bin/python train/calibrate.py [--model models/newsflow-topics-v4] [--dev eval/newsroom-dev.jsonl]

One number, a log-prior added to the head's bias for business, entertainment, politics, sport and
technology, chosen on the development set (never the test set) for the best top-1, ties to the smaller
prior. Written into the model's head and recorded in its ``newsflow-topics.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "eval"))

from evaluate import DESKS, article_vectors, gold_label  # noqa: E402

from newsflow_classify.classifier import HEAD_FILE, INFO_FILE  # noqa: E402
from newsflow_classify.model import Embedder  # noqa: E402

GRID = [round(0.25 * i, 2) for i in range(13)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "newsflow-topics-v4")
    parser.add_argument("--dev", type=Path, default=ROOT / "eval" / "newsroom-dev.jsonl")
    parser.add_argument("--vectors", type=Path, help="the dev articles' vectors, kept as evaluate.py --vectors")
    args = parser.parse_args()
    info = json.loads((args.model / INFO_FILE).read_text())
    head = load_file(args.model / HEAD_FILE)
    base_bias = head.get("trained_bias", head["bias"])
    rows = [json.loads(line) for line in args.dev.read_text().splitlines() if line.strip()]
    gold = [gold_label(row) for row in rows]
    x = article_vectors(Embedder(str(args.model), window_tokens=128), rows, args.vectors)
    desk = np.array([code in DESKS.values() for code in info["classes"]], dtype=np.float32)
    logits = x @ head["weight"].T
    found = {}
    for prior in GRID:
        best = np.argmax(logits + base_bias + prior * desk, axis=1)
        found[prior] = float(np.mean([info["classes"][i] == g for i, g in zip(best, gold, strict=True)]))
        print(f"desk prior {prior:.2f}: dev top-1 {found[prior]:.3f}")
    prior = max(GRID, key=lambda p: (found[p], -p))
    save_file(
        {"weight": head["weight"], "bias": base_bias + prior * desk, "trained_bias": base_bias},
        args.model / HEAD_FILE,
    )
    info["calibration"] = {"desk_log_prior": prior, "dev": args.dev.name, "dev_top1": found[prior]}
    (args.model / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    print(f"desk prior {prior} written to {args.model / HEAD_FILE}")


if __name__ == "__main__":
    main()
