"""Language identification with detectors that ship their models: no download at run time.

py3langid alone is right on every paragraph-length text we measured and fast (~8,000 texts/s),
but on headline-length text a single detector guesses wrong too often (97 % on our headlines;
about 88 % on harder sets). Below ``short_text_chars`` a second opinion from lingua's n-gram
models is averaged in: 98.8 % of our headlines get the right best guess, 97.6 % the right answer
(three weak guesses become ``und``), none wrong at confidence >= 0.8 (``eval/language_eval.py``).
Lingua's models (~1 GB of memory for the default candidates) load on the first short text, so a
feed of full articles never pays for them.
"""

from __future__ import annotations

import copy
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from py3langid import langid

from .settings import language_codes

if TYPE_CHECKING:
    import lingua

    from .settings import CleanupSettings

UNDETERMINED = "und"
# py3langid is right on every 150-260-character paragraph of our evaluation, so four or five paragraphs' worth
# decide. More only costs time.
_SAMPLE_CHARS = 1000
# py3langid's automaton forgets where it started after this many bytes: from each of its 104,583 states, any six
# bytes lead where they lead from the start (tests/unit/test_language_speed.py checks it over every state, and
# checks the counts against py3langid's own walk on real and random text).
_AUTOMATON_MEMORY = 6
# lingua names Norwegian by its written standard; news in Norway is overwhelmingly Bokmål.
_TO_LINGUA = {"no": "nb"}
_FROM_LINGUA = {value: key for key, value in _TO_LINGUA.items()}
# A text is in none of the candidates when, over every language py3langid knows, they hold under _NONE_SHARE of its
# probability, or under _OUTSIDE_SHARE while one other language holds _OTHER_LANGUAGE. Georgian, Armenian, Amharic,
# Khmer, Sinhala, Basque, Icelandic and Welsh left the default candidates 0.0000 (they were named Swahili at 0.9999,
# Serbian, Turkish or English at 0.81); our candidate-language headlines keep 0.27 at the least, paragraphs 0.986
# (eval/language_eval.py). With English the only candidate, "NATO summit" keeps 0.048 and "UN" 0.007, no other
# language holding 0.1, while Croatian keeps 0.0000 shared between Croatian, Bosnian and Serbian (0.41 the most).
_NONE_SHARE = 0.001
_OUTSIDE_SHARE = 0.05
_OTHER_LANGUAGE = 0.5


@dataclass(frozen=True, slots=True)
class Language:
    code: str
    confidence: float


class LanguageDetector:
    """Detects among ``candidates``; short text gets two detectors' averaged, honest probabilities.

    Below ``min_confidence`` the answer is ``und``: a guess that weak is worse than no answer.
    """

    def __init__(self, candidates: list[str], min_confidence: float = 0.2, short_text_chars: int = 200) -> None:
        self._langid = py3langid_identifier(candidates)
        self.candidates = list(self._langid.nb_classes)
        # The same model (its automaton shared) over every language it knows: how much of its probability the
        # candidates hold says whether the text is in one of them at all (see _candidate_scores).
        self._everything = copy.copy(self._langid)
        self._everything.set_languages(None)
        self._inside = np.isin(self._everything.nb_classes, self.candidates)
        self._inside_codes = [code for code in self._everything.nb_classes if code in set(self.candidates)]
        self.min_confidence = min_confidence
        self.short_text_chars = short_text_chars
        self._lingua: lingua.LanguageDetector | None = None
        # lingua loads each script's models on its first text in that script: 5-10 s of CPU once. It runs in a
        # thread of its own because cleanup's per-record CPU budget counts the working thread only
        # (newsflow_shared.budget): charged to the headline that came first, a slower CPU dead-lettered it.
        self._lingua_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lingua")

    @classmethod
    def for_settings(cls, settings: CleanupSettings) -> LanguageDetector:
        """The detector ``LANGUAGE_*`` settings describe."""
        return cls(
            language_codes(settings.language_candidates),
            settings.language_min_confidence,
            settings.language_short_text_chars,
        )

    def detect(self, text: str, hint: str | None = None) -> Language:
        sample = text[:_SAMPLE_CHARS]
        if not any(ch.isalpha() for ch in sample):
            return Language(UNDETERMINED, 0.0)
        scores, inside, other = self._candidate_scores(sample)
        if inside < _NONE_SHARE or (inside < _OUTSIDE_SHARE and other >= _OTHER_LANGUAGE):
            # In none of the candidates: the best of them is a guess, however sure it reads. Undetermined, as sure as
            # py3langid is that it is none of them (0.95 or more), so that LANGUAGE_ALLOWLIST diverts it like any other.
            return Language(UNDETERMINED, round(1.0 - inside, 4))
        mixed_share = 1.0
        if len(sample.strip()) < self.short_text_chars:
            second = self._lingua_scores(sample)
            scores = {code: (scores.get(code, 0.0) + second.get(code, 0.0)) / 2 for code in scores.keys() | second}
            mixed_share = self._main_language_share(sample)
        code = max(scores, key=scores.__getitem__)
        # Two languages in one short text: the answer is only as sure as the main one's share of it.
        confidence = round(float(scores[code]) * (mixed_share if mixed_share < 0.8 else 1.0), 4)
        if confidence >= self.min_confidence:
            return Language(code, confidence)
        if hint and hint.lower()[:2] in self.candidates:
            return Language(hint.lower()[:2], confidence)  # the publisher's word beats no answer
        return Language(UNDETERMINED, confidence)

    def _candidate_scores(self, text: str) -> tuple[dict[str, float], float, float]:
        """py3langid's probabilities among the candidates (what its ``rank`` gives restricted to them); over every
        language it knows, the share the candidates hold and the best other language's: from one walk of the text and
        one product, where asking both of py3langid took 0.3 ms an article more than the rest of the detection."""
        encoded = self._everything._encode(text)
        # py3langid's own softmax: its scores over the square root of the text's bytes (calibrated across lengths)
        raw = self._everything._raw_score(encoded) * (1.0 / math.sqrt(len(encoded) or 1))
        every = np.exp(raw - raw.max())
        theirs = every[self._inside]
        total = every.sum()
        inside = float(theirs.sum() / total)
        other = float(every[~self._inside].max(initial=0.0) / total)
        scores: dict[str, float] = {}
        if inside > 0.0:
            for code, probability in zip(self._inside_codes, (theirs / theirs.sum()).tolist(), strict=True):
                scores[code] = scores.get(code, 0.0) + probability  # a code of two columns (sr): their sum
        return scores, inside, other

    def _lingua_scores(self, text: str) -> dict[str, float]:
        return self._lingua_thread.submit(self._lingua_scores_here, text).result()

    def _lingua_scores_here(self, text: str) -> dict[str, float]:
        if self._lingua is None:  # only ever in the one lingua thread
            self._lingua = lingua_detector(self.candidates)
        values = self._lingua.compute_language_confidence_values(text)
        return {_FROM_LINGUA.get(code := v.language.iso_code_639_1.name.lower(), code): v.value for v in values}

    def _main_language_share(self, text: str) -> float:
        """How much of a short text its main language holds: halves confidently apart mean two languages.

        py3langid on each half costs microseconds; lingua's own segmentation cost more than the
        rest of cleanup on a 200-character text. Texts under eight words are too short to split.
        """
        words = text.split()
        if len(words) < 8:
            return 1.0
        middle = len(words) // 2
        halves = [" ".join(words[:middle]), " ".join(words[middle:])]
        (first, p1), (second, p2) = (_best(self._candidate_scores(half)[0]) for half in halves)
        if first == second or min(p1, p2) < 0.6:
            return 1.0
        return max(map(len, halves)) / sum(map(len, halves))


def _best(scores: dict[str, float]) -> tuple[str, float]:
    if not scores:  # none of the candidates holds anything of it
        return UNDETERMINED, 0.0
    code = max(scores, key=scores.__getitem__)
    return code, scores[code]


class VectorisedIdentifier(langid.LanguageIdentifier):
    """py3langid's model and scores, its walk over the text's bytes done by numpy.

    py3langid walks its feature automaton one byte at a time in Python, and sums its features'
    float16 weights outside BLAS: ~1 ms for a 1,000-character sample, a third of cleanup's worker's CPU
    per article. The automaton's state after any byte depends only on the last ``_AUTOMATON_MEMORY``
    bytes, so every position's state is found at once, in that many array steps; the weights of the
    chosen languages are kept once as float32 rows. The scores equal py3langid's to float32 rounding.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._next_state = np.frombuffer(self.tk_nextmove, dtype=np.uint32)
        self._row_start = np.asarray(self._rowbase, dtype=np.int64)
        self._feature_of = np.asarray(self.tk_output, dtype=np.int64)
        self._weights: np.ndarray | None = None

    def set_languages(self, langs: list[str] | None = None) -> None:
        super().set_languages(langs)
        self._weights = None

    def feature_counts(self, text: bytes) -> tuple[np.ndarray, np.ndarray]:
        """The model's features found in ``text`` and how often each: what py3langid's ``visit_counts`` finds."""
        data = np.frombuffer(text, dtype=np.uint8)
        size = len(data)
        states = np.zeros(size, dtype=np.int64)
        for back in range(min(_AUTOMATON_MEMORY, size) - 1, -1, -1):
            # Positions at least ``back`` bytes in take their byte ``back`` before; the rest have not started. As
            # slices, not index arrays: 0.14 ms per 1,000-byte sample against 0.19 with ``positions[back:]``.
            states[back:] = self._next_state[self._row_start[states[back:]] + data[: size - back]]
        features = self._feature_of[states]
        return np.unique(features[features >= 0], return_counts=True)

    def _raw_score(self, text: bytes) -> np.ndarray:
        found, counts = self.feature_counts(text)
        if not len(found):
            return super()._raw_score(text)  # py3langid's own answer for a text without features
        if self._weights is None:  # float32 rows of the chosen languages: ~18 MB for the default 45
            self._weights = np.ascontiguousarray(self.nb_ptc, dtype=np.float32)
        return np.log1p(counts.astype(np.float32)) @ self._weights[found] + self.nb_pc


def py3langid_identifier(candidates: list[str]) -> langid.LanguageIdentifier:
    """py3langid's bundled model, choosing among those ``candidates`` it knows (all it knows if none)."""
    identifier = VectorisedIdentifier.from_modelpath(langid.MODEL_DIR / langid.MODEL_FILE, norm_probs=True)
    known = set(identifier.nb_classes)
    identifier.set_languages([code for code in candidates if code in known] or sorted(known))
    return identifier


def lingua_detector(candidates: list[str], *, low_accuracy: bool = False) -> lingua.LanguageDetector:
    """lingua's bundled models for ``candidates``; its models load lazily, on first use."""
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = []
    for code in candidates:
        try:
            codes.append(IsoCode639_1.from_str(_TO_LINGUA.get(code, code)))
        except ValueError:
            continue  # a language only py3langid knows: it still gets py3langid's score
    builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
    return (builder.with_low_accuracy_mode() if low_accuracy else builder).build()
