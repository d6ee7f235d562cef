"""A small trained head: logistic regression over sentence vectors, for the 17 top-level topics.

Trained on text we may use: the official IPTC names and definitions of every narrower
topic (each labelled with its top-level ancestor) and our own example sentences. Never on
the BBC News articles some packages ship: those are for independent evaluation.
"""

from __future__ import annotations

import numpy as np
import torch

from newsflow_shared.taxonomy import Taxonomy

from .examples import EXAMPLES


def training_texts(taxonomy: Taxonomy) -> tuple[list[str], list[str]]:
    """(texts, top-level codes): every IPTC topic's name and definition, and the examples."""
    texts: list[str] = []
    labels: list[str] = []
    for topic in taxonomy.topics.values():
        root = taxonomy.root(topic.code)
        texts.append(topic.name)
        labels.append(root)
        if topic.definition:
            texts.append(f"{topic.name}: {topic.definition}")
            labels.append(root)
    for code, sentences in EXAMPLES.items():
        texts += sentences
        labels += [code] * len(sentences)
    return texts, labels


def train_head(
    vectors: np.ndarray, labels: list[str], classes: list[str], *, epochs: int = 300, l2: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression, full batch, class-balanced: returns (weights, bias)."""
    torch.manual_seed(0)
    x = torch.tensor(vectors, dtype=torch.float32)
    y = torch.tensor([classes.index(label) for label in labels])
    counts = torch.bincount(y, minlength=len(classes)).float()
    weight = (counts.sum() / (len(classes) * counts.clamp(min=1))).float()
    layer = torch.nn.Linear(x.shape[1], len(classes))
    optimiser = torch.optim.LBFGS(layer.parameters(), max_iter=epochs, line_search_fn="strong_wolfe")
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = loss_fn(layer(x * 10), y) + l2 * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return layer.weight.detach().numpy() * 10, layer.bias.detach().numpy()
