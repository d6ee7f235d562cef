"""The ingest service's wiring: ``articles.raw`` in, ``articles.ingested`` (or skipped, or the DLQ) out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from faststream.asgi import AsgiFastStream

from newsflow_shared import (
    DeadLetter,
    Delivery,
    Emit,
    IngestedArticle,
    RejectedInput,
    SkippedArticle,
    Stage,
)
from newsflow_shared.asyncapi import declare_outputs
from newsflow_shared.db import make_engine, ping_database, upgrade
from newsflow_shared.service import service_app
from newsflow_shared.stage import Output

from .logic import former_id, ingest
from .reading import read_raw
from .seen import SeenStore, unforgotten
from .settings import IngestSettings

SERVICE = "ingest"


class Ingest:
    """Handles one batch: validate each record, then drop the exact re-sends."""

    def __init__(self, settings: IngestSettings, stage: Stage, seen: SeenStore | None) -> None:
        self.settings = settings
        self.stage = stage
        self.seen = seen
        self.handled_at: datetime | None = None

    async def handle(self, deliveries: list[Delivery]) -> list[Output]:
        self.handled_at = datetime.now(UTC)  # before its outputs are sent: see SeenStore.remember
        outputs: list[Output] = []
        accepted: list[tuple[Delivery, IngestedArticle, str | None]] = []
        for delivery in deliveries:
            try:
                raw, normalised = read_raw(
                    delivery.value,
                    max_metadata_bytes=self.settings.ingest_max_metadata_bytes,
                    max_bytes=self.settings.ingest_max_bytes,
                )
                article = ingest(raw, max_bytes=self.settings.ingest_max_bytes, normalised=normalised)
                accepted.append((delivery, article, former_id(raw, article.id)))
            except RejectedInput as error:
                outputs.append(self.stage.reject(delivery, error))

        asked = [a.id for _, a, _ in accepted] + [former for _, _, former in accepted if former]
        recorded = await self.seen.recorded(asked) if self.seen else {}
        known = unforgotten(recorded)
        for delivery, article, former in accepted:
            if former in recorded and article.id not in recorded:
                # Passed on under the id its URL had in the earlier normal form (forgotten since or not: an earlier
                # version may be stored): it keeps that id, or the stored article would get a second copy.
                article = article.model_copy(update={"id": former})
            if known.get(article.id) == article.content_hash and not delivery.is_replay:
                skipped = SkippedArticle(
                    id=article.id,
                    content_hash=article.content_hash,
                    reason="an exact re-send of an article already passed on; it was not processed again",
                )
                outputs.append(Emit.following(delivery, self.settings.topic_skipped, skipped, article.id))
                continue
            if self.settings.ingest_dedupe:
                known[article.id] = article.content_hash  # a second copy in the same batch is a re-send too
            outputs.append(Emit.following(delivery, self.settings.topic_ingested, article, article.id))
        return outputs

    async def remember(self, outputs: list[Output]) -> None:
        if self.seen is None:
            return
        passed_on = {
            o.key: o.message.content_hash
            for o in outputs
            if isinstance(o, Emit) and isinstance(o.message, IngestedArticle)
        }
        await self.seen.remember(passed_on, self.handled_at)

    async def forget_dead_lettered(self, deliveries: list[Delivery]) -> list[Output]:
        """Articles a later stage dead-lettered are forgotten, so that pushing them again is not a re-send."""
        if self.seen is not None:
            letters, _ = self.stage.decode_each(deliveries, DeadLetter)
            await self.seen.forget(
                letter.article_id for _, letter in letters if letter.stage != SERVICE and letter.article_id
            )
        return []


def create_app(settings: IngestSettings | None = None) -> AsgiFastStream:
    settings = settings or IngestSettings()
    stage = Stage.for_service(settings, SERVICE, keyed_by_article=False)
    broker = stage.broker
    service = Ingest(settings, stage, seen=None)

    stage.consume(settings.topic_raw, service.handle, on_published=service.remember)
    if settings.ingest_dedupe:
        stage.read_dead_letters("forget", service.forget_dead_lettered)
    declare_outputs(stage, settings.topic_ingested, settings.topic_skipped)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        if settings.uses_database:
            await upgrade(settings.database_url, wait=120)
            engine = make_engine(settings.database_url)
            service.seen = SeenStore(engine)
            stage.depends_on("database", lambda: ping_database(engine))
            try:
                yield
            finally:
                await engine.dispose()
        else:
            yield

    return service_app(broker, lifespan)
