"""Users' own Hugging Face models: a text classifier with IPTC labels, or a zero-shot NLI model.

``CLASSIFY_MODEL`` may name any local folder or cached hub name. What it is decides how it
is used (see :func:`newsflow_classify.loader.load_classifier`):

- a sequence classifier whose labels are IPTC QCodes (``medtop:16000000``) or IPTC topic
  names: its scores are used as they are (sigmoid when it was trained multi-label);
- a sequence classifier with an ``entailment`` label (an NLI model): zero-shot, each
  top-level topic posed as the hypothesis "This news article is about <topic>.";
- anything else is an encoder for the default prototype classifier.
"""

from __future__ import annotations

import re
import threading

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PretrainedConfig

from newsflow_shared import TopicScore
from newsflow_shared.taxonomy import Taxonomy

from .classifier import ScoringPolicy
from .model import Runtime, cut_for_tokens, resolve_model_path

_QCODE = re.compile(r"^medtop:[0-9]{8}$")  # ASCII digits: \d is any script's digits


def iptc_labels(config: PretrainedConfig, taxonomy: Taxonomy) -> dict[int, str] | None:
    """Label index -> QCode when every label is an IPTC code or topic name; else None."""
    by_name = {topic.name.lower(): code for code, topic in taxonomy.topics.items()}
    mapped: dict[int, str] = {}
    for index, label in (config.id2label or {}).items():
        text = str(label).strip()
        code = text if _QCODE.match(text) and text in taxonomy.topics else by_name.get(text.lower())
        if code is None:
            return None
        mapped[int(index)] = code
    return mapped or None


def entailment_index(config: PretrainedConfig) -> int | None:
    for index, label in (config.id2label or {}).items():
        if str(label).lower().startswith("entail"):
            return int(index)
    return None


class _SequenceModel:
    def __init__(self, model: str, *, max_tokens: int, device: str, precision: str) -> None:
        self.name = model
        path = resolve_model_path(model)
        self.runtime = Runtime.choose(device, precision)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        # One call at a time changes the fast tokenizer's shared settings (see Embedder.tokenizing).
        self.tokenizing = threading.Lock()
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path, local_files_only=True, dtype=self.runtime.dtype
        )
        self.model.eval().to(self.runtime.device)
        self.max_tokens = max_tokens

    @torch.inference_mode()
    def logits(self, first: list[str], second: list[str] | None = None, batch_size: int = 16) -> np.ndarray:
        rows = []
        for start in range(0, len(first), batch_size):
            with self.tokenizing:
                encoded = self.tokenizer(
                    [cut_for_tokens(text, self.max_tokens) for text in first[start : start + batch_size]],
                    second[start : start + batch_size] if second is not None else None,
                    padding=True,
                    truncation=True,
                    max_length=self.max_tokens,
                    return_tensors="pt",
                ).to(self.runtime.device)
            rows.append(self.model(**encoded).logits.float().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, self.model.config.num_labels))


class LabelClassifier(_SequenceModel):
    """A model trained on IPTC labels: its own scores, best first."""

    def __init__(
        self, model: str, taxonomy: Taxonomy, labels: dict[int, str], policy: ScoringPolicy, **options: object
    ) -> None:
        super().__init__(model, **options)  # type: ignore[arg-type]
        self.taxonomy = taxonomy
        self.labels = labels
        self.policy = policy
        self.multi_label = self.model.config.problem_type == "multi_label_classification"

    def classify(self, texts: list[str]) -> list[list[TopicScore]]:
        logits = self.logits(texts)
        if self.multi_label:
            probabilities = 1 / (1 + np.exp(-logits))
        else:
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        return [
            _ranked(row, [self.labels[i] for i in range(len(row))], self.taxonomy, self.policy) for row in probabilities
        ]


class ZeroShotClassifier(_SequenceModel):
    """An NLI model asked, for each top-level topic, whether the article is about it."""

    template = "This news article is about {}."

    def __init__(
        self, model: str, taxonomy: Taxonomy, entailment: int, policy: ScoringPolicy, **options: object
    ) -> None:
        super().__init__(model, **options)  # type: ignore[arg-type]
        self.taxonomy = taxonomy
        self.entailment = entailment
        self.policy = policy
        self.top = taxonomy.top_level()

    def classify(self, texts: list[str]) -> list[list[TopicScore]]:
        hypotheses = [self.template.format(topic.name) for topic in self.top]
        first = [text for text in texts for _ in hypotheses]
        logits = self.logits(first, hypotheses * len(texts)).reshape(len(texts), len(hypotheses), -1)
        entail = logits[:, :, self.entailment]
        # Softmax over the topics of each article: which topic is it most about.
        shifted = np.exp(entail - entail.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        codes = [topic.code for topic in self.top]
        return [_ranked(row, codes, self.taxonomy, self.policy) for row in probabilities]


def _ranked(probabilities: np.ndarray, codes: list[str], taxonomy: Taxonomy, policy: ScoringPolicy) -> list[TopicScore]:
    order = np.argsort(-probabilities)[: policy.top_k]
    found = []
    for rank, index in enumerate(order):
        score = float(probabilities[index])
        if score < policy.threshold and rank > 0:
            continue
        topic = taxonomy.topics[codes[index]]
        found.append(TopicScore(code=topic.code, label=topic.name, score=round(score, 4), level=topic.level))
    return found
