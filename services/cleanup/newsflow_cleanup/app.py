"""The cleanup service's wiring: ``articles.ingested`` in, ``articles.clean`` (or the DLQ) out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream.asgi import AsgiFastStream

from newsflow_shared import Delivery, Emit, IngestedArticle, Stage, configure_logging, make_broker
from newsflow_shared.db import make_engine, upgrade
from newsflow_shared.service import service_app
from newsflow_shared.stage import Output

from .language import LanguageDetector
from .logic import clean
from .near_duplicates import DuplicateIndex
from .settings import CleanupSettings

SERVICE = "cleanup"


def create_app(settings: CleanupSettings | None = None) -> AsgiFastStream:
    settings = settings or CleanupSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    broker = make_broker(settings, SERVICE)
    stage = Stage(broker, settings, name=SERVICE)
    detector = LanguageDetector(
        [c.strip() for c in settings.language_candidates.split(",") if c.strip()], settings.language_min_confidence
    )

    allowed = {code.strip().lower() for code in settings.language_allowlist.split(",") if code.strip()}
    duplicates: dict[str, DuplicateIndex] = {}

    async def clean_one(delivery: Delivery) -> list[Emit]:
        # Off the event loop: a big HTML page takes tens of milliseconds, and heartbeats must go on.
        article = await asyncio.to_thread(clean, delivery.decode(IngestedArticle), detector, settings)
        if allowed and article.language not in allowed:
            return [Emit.following(delivery, settings.topic_unsupported, article, article.id)]
        if "index" in duplicates:
            match = await duplicates["index"].check_and_add(article.id, article.text)
            if match:
                article = article.model_copy(
                    update={"duplicate_of": match.duplicate_of, "duplicate_score": match.score}
                )
        return [Emit.following(delivery, settings.topic_clean, article, article.id)]

    async def handle(deliveries: list[Delivery]) -> list[Output]:
        return await stage.each(deliveries, clean_one)

    stage.consume(settings.topic_ingested, handle)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        if not settings.cleanup_near_duplicates:
            yield
            return
        await upgrade(settings.database_url, wait=120)
        engine = make_engine(settings.database_url)
        duplicates["index"] = DuplicateIndex(engine, settings.cleanup_duplicate_threshold)
        try:
            yield
        finally:
            await engine.dispose()

    return service_app(broker, lifespan)
