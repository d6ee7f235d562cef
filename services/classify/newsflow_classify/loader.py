"""Which classifier ``CLASSIFY_MODEL`` gets: decided by what the model is (see :mod:`.hf_models`)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig
from transformers.utils import logging as transformers_logging

from newsflow_shared.taxonomy import load_taxonomy

from .classifier import HeadClassifier, PrototypeClassifier, ScoringPolicy, TopicClassifier
from .hf_models import LabelClassifier, ZeroShotClassifier, entailment_index, iptc_labels
from .model import Embedder, choose_device, resolve_model_path, shipped_model_names
from .settings import ClassifySettings
from .workers import WorkerPlan


def model_problem(name: str) -> str | None:
    """Why ``CLASSIFY_MODEL`` cannot be loaded offline, or None: read from its config alone, before the Kafka wait.

    Found at load instead, a misspelt name read as transformers' "couldn't connect to huggingface.co ... check your
    internet connection" (nothing is downloaded at run time), a missing folder as "Repo id must be in the form
    'repo_name'", each in a 60-line traceback after the service had waited for Kafka.
    """
    try:
        path = resolve_model_path(name)
    except ImportError as error:
        return f"the package it names cannot be imported ({error})"
    except (AttributeError, OSError) as error:
        return f"the package it names ships no model folder ({error})"
    folder = Path(path)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            return f"{folder} holds no config.json: a Hugging Face model folder has one"
        if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
            return f"{folder} holds no weights (*.safetensors or *.bin)"
    elif folder.exists() or name.startswith(("/", ".", "~")):
        return f"{path} is not a folder"
    try:
        AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        if not folder.is_dir():
            return (
                f"no folder by that name, no model Newsflow ships ({', '.join(shipped_model_names())}), and not in "
                "the Hugging Face cache: models are never downloaded at run time; give a folder or a cached name"
            )
        return str(error).splitlines()[0]
    return None


def worker_plan(settings: ClassifySettings) -> WorkerPlan:
    """How many model calls run at once and with how many torch threads each (``CLASSIFY_WORKERS``,
    ``CLASSIFY_THREADS``)."""
    # The device alone: choosing the precision may time both (bf16_speedup), which belongs under the replica's threads.
    device = choose_device(settings.classify_device)
    return WorkerPlan.choose(
        threads=settings.classify_threads,
        workers=settings.classify_workers,
        batch=settings.batch_max_records,
        device=device,
    )


def load_classifier(settings: ClassifySettings, plan: WorkerPlan | None = None) -> TopicClassifier:
    """Build the classifier once, at start-up: it loads weights (and, for prototypes, embeds them)."""
    # A service's log is read by machines: transformers' "Loading weights" bar is noise there, and its lock
    # can deadlock a process that exits while a thread is drawing it.
    transformers_logging.disable_progress_bar()
    plan = plan or worker_plan(settings)
    # Every kind of model: on Kubernetes CLASSIFY_THREADS comes from the container's CPU limit, and torch would
    # otherwise start one thread per core of the node and be throttled. Loading (and embedding the topics'
    # descriptions) uses them all; then each model call gets its share (see the end).
    torch.set_num_threads(plan.threads)
    try:
        return _load(settings, plan.threads_each)
    finally:
        # torch's count is the process's: threads started from now on (the model calls', the compiling one, which
        # builds the count into its kernels) take their share.
        torch.set_num_threads(plan.threads_each)


def _load(settings: ClassifySettings, call_threads: int) -> TopicClassifier:
    taxonomy = load_taxonomy()
    policy = ScoringPolicy(top_k=settings.classify_top_k, threshold=settings.classify_threshold)
    options = {
        "max_tokens": settings.classify_max_tokens,
        "device": settings.classify_device,
        "precision": settings.classify_precision,
    }
    config = AutoConfig.from_pretrained(resolve_model_path(settings.classify_model), local_files_only=True)
    is_classifier = any(name.endswith("ForSequenceClassification") for name in config.architectures or [])
    if is_classifier and (labels := iptc_labels(config, taxonomy)):
        return LabelClassifier(settings.classify_model, taxonomy, labels, policy, **options)
    if is_classifier and (entailment := entailment_index(config)) is not None:
        return ZeroShotClassifier(settings.classify_model, taxonomy, entailment, policy, **options)
    embedder = Embedder(
        settings.classify_model,
        compile_mode=settings.classify_compile,
        window_tokens=settings.classify_window_tokens,
        call_threads=call_threads,
        **options,  # type: ignore[arg-type]
    )
    if HeadClassifier.fits(embedder.path):
        return HeadClassifier(embedder, taxonomy, policy)
    return PrototypeClassifier(embedder, taxonomy, policy)
