"""The cleanup service's wiring: ``articles.ingested`` in, ``articles.clean`` (or the DLQ) out."""

from __future__ import annotations

import asyncio

from faststream.asgi import AsgiFastStream

from newsflow_shared import Delivery, Emit, IngestedArticle, Stage, configure_logging, make_broker
from newsflow_shared.service import service_app
from newsflow_shared.stage import Output

from .language import LanguageDetector
from .logic import clean
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

    async def clean_one(delivery: Delivery) -> list[Emit]:
        # Off the event loop: a big HTML page takes tens of milliseconds, and heartbeats must go on.
        article = await asyncio.to_thread(clean, delivery.decode(IngestedArticle), detector, settings)
        return [Emit.following(delivery, settings.topic_clean, article, article.id)]

    async def handle(deliveries: list[Delivery]) -> list[Output]:
        return await stage.each(deliveries, clean_one)

    stage.consume(settings.topic_ingested, handle)
    return service_app(broker)
