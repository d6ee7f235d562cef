"""The cleanup service's wiring: ``articles.ingested`` in, ``articles.clean`` (or unsupported, or the DLQ) out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream.asgi import AsgiFastStream

from newsflow_shared import Delivery, Emit, EmptyArticle, IngestedArticle, Stage, configure_logging, make_broker
from newsflow_shared.db import make_engine, upgrade
from newsflow_shared.service import service_app
from newsflow_shared.stage import Output

from .language import LanguageDetector
from .learned import LearnedBoilerplate
from .logic import clean
from .near_duplicates import DuplicateIndex
from .settings import CleanupSettings

SERVICE = "cleanup"


class Cleanup:
    """One article at a time: repair and detect (in a thread), then the shared, database-backed steps."""

    def __init__(self, settings: CleanupSettings) -> None:
        self.settings = settings
        self.detector = LanguageDetector(
            [c.strip() for c in settings.language_candidates.split(",") if c.strip()], settings.language_min_confidence
        )
        self.allowed = {code.strip().lower() for code in settings.language_allowlist.split(",") if code.strip()}
        self.duplicates: DuplicateIndex | None = None  # opened in the lifespan
        self.boilerplate: LearnedBoilerplate | None = None

    async def clean_one(self, delivery: Delivery) -> list[Emit]:
        settings = self.settings
        # Off the event loop: a big HTML page takes tens of milliseconds, and heartbeats must go on.
        article = await asyncio.to_thread(clean, delivery.decode(IngestedArticle), self.detector, settings)
        if self.allowed and article.language not in self.allowed:
            return [Emit.following(delivery, settings.topic_unsupported, article, article.id)]
        lines = self.boilerplate.candidates(article) if self.boilerplate else {}
        if self.boilerplate:
            article = await self.boilerplate.strip(article)
            if not article.text.strip():
                raise EmptyArticle("no article text is left after removing this source's learned boilerplate")
        if self.duplicates:
            match = await self.duplicates.check_and_add(article.id, article.text)
            if match:
                article = article.model_copy(
                    update={"duplicate_of": match.duplicate_of, "duplicate_score": match.score}
                )
        if self.boilerplate and article.duplicate_of is None:
            await self.boilerplate.learn(article, lines)
        return [Emit.following(delivery, settings.topic_clean, article, article.id)]


def create_app(settings: CleanupSettings | None = None) -> AsgiFastStream:
    settings = settings or CleanupSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    broker = make_broker(settings, SERVICE)
    stage = Stage(broker, settings, name=SERVICE)
    service = Cleanup(settings)

    async def handle(deliveries: list[Delivery]) -> list[Output]:
        return await stage.each(deliveries, service.clean_one)

    stage.consume(settings.topic_ingested, handle)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        if not (settings.cleanup_near_duplicates or settings.cleanup_learn_boilerplate):
            yield
            return
        await upgrade(settings.database_url, wait=120)
        engine = make_engine(settings.database_url)
        if settings.cleanup_near_duplicates:
            service.duplicates = DuplicateIndex(engine, settings.cleanup_duplicate_threshold)
        if settings.cleanup_learn_boilerplate:
            service.boilerplate = LearnedBoilerplate(engine, min_articles=settings.cleanup_boilerplate_min_articles)
        try:
            yield
        finally:
            await engine.dispose()

    return service_app(broker, lifespan)
