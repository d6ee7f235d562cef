"""Language identification with py3langid, which ships its model: no download at run time."""

from __future__ import annotations

from dataclasses import dataclass

from py3langid import langid

# Below this many letters the statistics are too thin for a confident answer.
_SHORT_TEXT = 40


@dataclass(frozen=True, slots=True)
class Language:
    code: str
    confidence: float


class LanguageDetector:
    """Detects among ``candidates``; confidence is scaled down for short text so it stays honest."""

    def __init__(self, candidates: list[str], min_confidence: float = 0.5) -> None:
        self._identifier = langid.LanguageIdentifier.from_modelpath(
            langid.MODEL_DIR / langid.MODEL_FILE, norm_probs=True
        )
        known = set(self._identifier.nb_classes)
        self._identifier.set_languages([c for c in candidates if c in known] or None)
        self.min_confidence = min_confidence

    def detect(self, text: str, hint: str | None = None) -> Language:
        sample = text[:5000]
        letters = sum(ch.isalpha() for ch in sample)
        if letters == 0:
            return Language("und", 0.0)
        code, probability = self._identifier.classify(sample)
        confidence = float(probability) * min(1.0, letters / _SHORT_TEXT)
        if hint and confidence < self.min_confidence and hint.lower()[:2] in self._identifier.nb_classes:
            return Language(hint.lower()[:2], confidence)
        if confidence < self.min_confidence:
            return Language("und", round(confidence, 4))
        return Language(code, round(confidence, 4))
