"""The classify service's wiring: ``articles.clean`` in, ``articles.enriched`` (or the DLQ) out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream.asgi import AsgiFastStream

from newsflow_shared import CleanArticle, Delivery, Emit, Stage
from newsflow_shared.asyncapi import declare_outputs
from newsflow_shared.heap import freeze_long_lived
from newsflow_shared.service import service_app
from newsflow_shared.stage import Output

from .classifier import TopicClassifier
from .loader import load_classifier
from .logic import enrich, model_input
from .settings import ClassifySettings

SERVICE = "classify"


class Classify:
    """Classifies a whole batch in one model call, off the event loop.

    A batch the model fails on raises: the stage splits it until the article that fails is alone,
    and dead-letters that one. Inputs are cut to what the model reads before tokenising, which is
    what bounds the time one article can take here.
    """

    def __init__(self, settings: ClassifySettings, stage: Stage) -> None:
        self.settings = settings
        self.stage = stage
        self.classifier: TopicClassifier | None = None
        # One inference at a time: torch already uses every core.
        self._model_lock = asyncio.Lock()

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
        if self.classifier is None:
            raise RuntimeError("the model is not loaded yet")
        async with self._model_lock:
            # Inference holds the CPU for long stretches: a worker thread keeps heartbeats and commits going.
            started = time.perf_counter()
            topics = await asyncio.to_thread(self.classifier.classify, texts)
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
        service.classifier = await asyncio.to_thread(load_classifier, settings)
        if (embedder := getattr(service.classifier, "embedder", None)) is not None:
            # The compiled model comes after start-up's freeze, with as many objects again (the compiler's graphs):
            # left in sight, a full pass over them cost ~0.3 s of the event loop's CPU in the middle of a batch.
            embedder.when_compiled(freeze_long_lived)
        yield

    return service_app(broker, lifespan)
