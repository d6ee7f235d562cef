"""The cleanup service's wiring: ``articles.ingested`` in, ``articles.clean`` (or unsupported, or the DLQ) out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream.asgi import AsgiFastStream
from sqlalchemy.ext.asyncio import AsyncEngine

from newsflow_shared import (
    CleanArticle,
    Delivery,
    Emit,
    EmptyArticle,
    RejectedInput,
    Stage,
)
from newsflow_shared.asyncapi import declare_outputs
from newsflow_shared.db import make_engine, ping_database, upgrade
from newsflow_shared.service import service_app
from newsflow_shared.stage import Output
from newsflow_shared.text_safety import has_words

from .learned import LearnedBoilerplate
from .near_duplicates import DuplicateIndex
from .settings import CleanupSettings, language_codes
from .worker import cleanup_worker

SERVICE = "cleanup"


class Cleanup:
    """Repairs and language per article (in a worker process, under a CPU budget); the shared,
    database-backed steps once per batch."""

    def __init__(self, settings: CleanupSettings, stage: Stage | None = None) -> None:
        self.settings = settings
        self.stage = stage
        self.worker = cleanup_worker(settings)
        self.allowed = set(language_codes(settings.language_allowlist))
        self.engine: AsyncEngine | None = None  # opened in the lifespan, with the two below
        self.duplicates: DuplicateIndex | None = None
        self.boilerplate: LearnedBoilerplate | None = None

    def _route(self, delivery: Delivery, article: CleanArticle) -> Emit:
        """The clean topic, or the unsupported one for a language outside the allow-list."""
        settings = self.settings
        # Only a language we are sure of diverts an article: a headline-length text with a weak
        # guess is passed on rather than lost to a topic nobody reads.
        unsupported = (
            self.allowed
            and article.language not in self.allowed
            and article.language_confidence >= settings.language_allowlist_min_confidence
        )
        return Emit.following(
            delivery, settings.topic_unsupported if unsupported else settings.topic_clean, article, article.id
        )

    async def handle(self, deliveries: list[Delivery]) -> list[Output]:
        assert self.stage is not None
        # The whole batch goes to the worker process from one thread, so heartbeats go on meanwhile.
        # Each record done counts as progress: a batch of slow ones takes minutes, and liveness must not end it.
        cleaned = await asyncio.to_thread(
            self.worker.map, [delivery.value for delivery in deliveries], self.stage.watch.record_done
        )
        outputs: list[Output] = []
        passing: list[tuple[int, Delivery, CleanArticle]] = []
        for delivery, result in zip(deliveries, cleaned, strict=True):
            if isinstance(result, RejectedInput):
                outputs.append(self.stage.reject(delivery, result))
                continue
            if isinstance(result, Exception):
                raise result  # a surprise: the stage splits the batch and retries this article alone
            output = self._route(delivery, result)
            if output.topic == self.settings.topic_clean:
                passing.append((len(outputs), delivery, result))
            outputs.append(output)
        if passing and self.engine is not None:
            results = await self.shared_steps([article for _, _, article in passing])
            for (index, delivery, _), result in zip(passing, results, strict=True):
                outputs[index] = (
                    self.stage.reject(delivery, result)
                    if isinstance(result, RejectedInput)
                    else Emit.following(delivery, self.settings.topic_clean, result, result.id)
                )
        return outputs

    async def shared_steps(self, articles: list[CleanArticle]) -> list[CleanArticle | RejectedInput]:
        """Learned boilerplate, then near-duplicates, then learning: one transaction for the whole batch."""
        assert self.engine is not None
        lines = [self.boilerplate.candidates(a) if self.boilerplate else {} for a in articles]
        async with self.engine.begin() as connection:
            if self.boilerplate:
                articles = await self.boilerplate.strip_many(connection, articles, lines)
            results: list[CleanArticle | RejectedInput] = []
            for article in articles:
                empty = not has_words(article.text)  # as clean() and the CleanArticle contract
                results.append(
                    EmptyArticle("no article text is left after removing this source's learned boilerplate")
                    if empty
                    else article
                )
            kept = [(i, a) for i, a in enumerate(results) if isinstance(a, CleanArticle)]
            if self.duplicates and kept:
                matches = await self.duplicates.check_and_add_many(connection, [(a.id, a.text) for _, a in kept])
                for (i, article), match in zip(kept, matches, strict=True):
                    if match:
                        results[i] = article.model_copy(
                            update={"duplicate_of": match.duplicate_of, "duplicate_score": match.score}
                        )
            if self.boilerplate:
                originals = [
                    (a, lines[i])
                    for i, a in enumerate(results)
                    if isinstance(a, CleanArticle) and a.duplicate_of is None
                ]
                await self.boilerplate.learn_many(connection, originals)
        return results


def create_app(settings: CleanupSettings | None = None) -> AsgiFastStream:
    settings = settings or CleanupSettings()
    stage = Stage.for_service(settings, SERVICE)
    broker = stage.broker
    service = Cleanup(settings, stage)
    stage.consume(settings.topic_ingested, service.handle, max_poll_interval_ms=settings.longest_batch_ms())
    declare_outputs(stage, settings.topic_clean, settings.topic_unsupported)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        if not settings.uses_database:
            yield
            return
        await upgrade(settings.database_url, wait=120)
        engine = service.engine = make_engine(settings.database_url)
        stage.depends_on("database", lambda: ping_database(engine))
        if settings.cleanup_near_duplicates:
            service.duplicates = DuplicateIndex(
                engine, settings.cleanup_duplicate_threshold, keep_days=settings.cleanup_duplicate_days
            )
        if settings.cleanup_learn_boilerplate:
            service.boilerplate = LearnedBoilerplate(engine, min_articles=settings.cleanup_boilerplate_min_articles)
        try:
            yield
        finally:
            await engine.dispose()

    @asynccontextmanager
    async def lifespan_with_worker() -> AsyncIterator[None]:
        await asyncio.to_thread(service.worker.start)
        try:
            async with lifespan():
                yield
        finally:
            await asyncio.to_thread(service.worker.close)

    return service_app(broker, lifespan_with_worker)
