"""Which classifier ``CLASSIFY_MODEL`` gets: a sentence encoder with IPTC prototypes (the default)."""

from __future__ import annotations

from newsflow_shared.taxonomy import load_taxonomy

from .classifier import PrototypeClassifier, ScoringPolicy, TopicClassifier
from .model import Embedder
from .settings import ClassifySettings


def load_classifier(settings: ClassifySettings) -> TopicClassifier:
    """Build the classifier once, at start-up: it loads weights and embeds every prototype."""
    embedder = Embedder(
        settings.classify_model,
        max_tokens=settings.classify_max_tokens,
        device=settings.classify_device,
        precision=settings.classify_precision,
        threads=settings.classify_threads,
    )
    policy = ScoringPolicy(top_k=settings.classify_top_k, threshold=settings.classify_threshold)
    return PrototypeClassifier(embedder, load_taxonomy(), policy)
