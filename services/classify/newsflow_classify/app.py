"""The classify service's wiring: ``articles.clean`` in, ``articles.enriched`` (or the DLQ) out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream.asgi import AsgiFastStream

from newsflow_shared import CleanArticle, Delivery, Emit, Stage, TopicScore
from newsflow_shared.asyncapi import declare_outputs
from newsflow_shared.heap import freeze_long_lived
from newsflow_shared.service import service_app
from newsflow_shared.stage import Output

from .classifier import TopicClassifier
from .loader import load_classifier, worker_plan
from .logic import enrich, model_input
from .settings import ClassifySettings
from .workers import BatchWorkers

SERVICE = "classify"


class Classify:
    """Classifies a whole batch off the event loop, its shares in as many model calls at once as the plan says.

    A batch the model fails on raises: the stage splits it until the article that fails is alone,
    and dead-letters that one. Inputs are cut to what the model reads before tokenising, which is
    what bounds the time one article can take here.
    """

    def __init__(self, settings: ClassifySettings, stage: Stage) -> None:
        self.settings = settings
        self.stage = stage
        self.classifier: TopicClassifier | None = None
        self.workers: BatchWorkers[list[TopicScore]] | None = None
        # One batch at a time: its shares already use every thread the replica has.
        self._model_lock = asyncio.Lock()

    def load(self) -> None:
        """Load the model and share the replica's threads out among its model calls (in a thread: it takes seconds)."""
        plan = worker_plan(self.settings)
        classifier = load_classifier(self.settings, plan)
        self.use(classifier, plan.workers)
        logging.getLogger(__name__).info(
            "%s: %d model call(s) at once of %d torch thread(s) each",
            classifier.name,
            plan.workers,
            plan.threads_each,
        )

    def use(self, classifier: TopicClassifier, workers: int = 1) -> None:
        """Classify with ``classifier``, ``workers`` calls at once on each batch's shares."""
        self.classifier = classifier
        self.workers = BatchWorkers(classifier.classify, workers)

    def close(self) -> None:
        """Let the model calls' threads go (see :meth:`BatchWorkers.close`)."""
        if self.workers is not None:
            self.workers.close()

    async def handle(self, deliveries: list[Delivery]) -> list[Output]:
        articles, outputs = self.stage.decode_each(deliveries, CleanArticle)
        if not articles:
            return outputs
        topics = await self._classify([model_input(a) for _, a in articles])
        for (delivery, article), found in zip(articles, topics, strict=True):
            enriched = enrich(article, found, self.classifier.name)  # type: ignore[union-attr]
            outputs.append(Emit.following(delivery, self.settings.topic_enriched, enriched, article.id))
        return outputs

    async def _classify(self, texts: list[str]):
        if self.workers is None:
            raise RuntimeError("the model is not loaded yet")
        async with self._model_lock:
            # Inference holds the CPU for long stretches: a worker thread keeps heartbeats and commits going.
            started = time.perf_counter()
            topics = await asyncio.to_thread(self.workers, texts)
            # Timed here, not in each classifier: every kind of model (and a user's own) is measured the same way.
            self.stage.metrics.inference_time(len(texts), time.perf_counter() - started)
            return topics


def create_app(settings: ClassifySettings | None = None) -> AsgiFastStream:
    settings = settings or ClassifySettings()
    stage = Stage.for_service(settings, SERVICE)
    broker = stage.broker
    service = Classify(settings, stage)
    # Large batches can take a while on a CPU: give the consumer room between polls.
    stage.consume(settings.topic_clean, service.handle, max_poll_interval_ms=600_000)
    declare_outputs(stage, settings.topic_enriched)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await asyncio.to_thread(service.load)
        if (embedder := getattr(service.classifier, "embedder", None)) is not None:
            # The compiled model comes after start-up's freeze, with as many objects again (the compiler's graphs):
            # left in sight, a full pass over them cost ~0.3 s of the event loop's CPU in the middle of a batch.
            embedder.when_compiled(freeze_long_lived)
        try:
            yield
        finally:
            # After the broker stopped, so no batch runs: the model threads go with the app (a test or an
            # embedding process that starts the app again would otherwise keep one idle pool per start).
            service.close()

    return service_app(broker, lifespan)
