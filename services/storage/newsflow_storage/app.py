"""The storage service's wiring: ``articles.enriched`` in, rows and ``articles.stored`` out, the API beside."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from newsflow_shared import Delivery, Emit, EnrichedArticle, Stage
from newsflow_shared.asyncapi import declare_outputs
from newsflow_shared.db import make_engine, ping_database, upgrade
from newsflow_shared.health import StageWatch
from newsflow_shared.heap import freeze_long_lived
from newsflow_shared.kafka_clients import wait_for_kafka, wait_for_topics
from newsflow_shared.stage import Output

from . import __version__
from .api import add_routes
from .dead_letters import (
    DeadLetterKeeper,
    DeadLetterStore,
    prune_settled,
    release_lapsed_claims,
    repeat_every,
    warn_if_kept_shorter_than_the_topic,
)
from .repository import ArticleRepository
from .settings import StorageSettings
from .web import add_web

log = logging.getLogger(__name__)


def open_to_others(settings: StorageSettings) -> bool:
    """Whether the API listens beyond this machine with no token: anyone who reaches the port reads every article
    and re-drives dead letters. Allowed (a private network, a proxy that checks who comes), and said at start."""
    if settings.storage_api_token is not None:
        return False
    # Host names are case-blind and may end in the root's dot; an IPv6 address may come in its URL brackets.
    host = settings.storage_api_host.strip().removeprefix("[").removesuffix("]").rstrip(".").lower()
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: "localhost" stays here, any other may be reached
        return host != "localhost"


SERVICE = "storage"

KAFKA_RETRY_SECONDS = (30.0, 300.0)
"""How soon storage tries again to start its consumers after Kafka refused them (a login, an ACL: mended on Kafka's
side as often as in a setting here), doubling from the first to the second while it refuses."""


async def consume_once_kafka_answers(broker: KafkaBroker, watch: StageWatch, settings: StorageSettings) -> None:
    """Start storage's consumers once Kafka answers and the topics exist, while the API and the page already serve.

    The other services wait for Kafka before they start, and exit saying why after a minute: with nothing but Kafka
    to read, a restart loses nothing. Storage waited the same, so a replica (re)started during a Kafka outage served
    none of the stored articles, whose readers never needed Kafka (``/ready/api``, Kubernetes' readiness of the API,
    asks only the database). Its consumers now start here, when they can: ``/ready`` says why not meanwhile,
    ``newsflow_consumers_started`` is 0 (an alert watches it), and ``/health`` holds (a restart would not bring Kafka
    back).
    """
    retry_in = KAFKA_RETRY_SECONDS[0]
    watch.not_consuming = f"waiting for Kafka at {settings.kafka_bootstrap_servers} and the topics"
    while True:
        try:
            await wait_for_kafka(settings, timeout=60.0, say_waiting=True)
            await wait_for_topics(settings)
            await broker.start()
            break
        except TimeoutError as error:  # Kafka away, or the topics not there (yet): asked again at once
            watch.not_consuming = str(error)
            log.warning("%s; the API serves meanwhile, and the consumers start when Kafka answers", error)
        except Exception as error:
            watch.not_consuming = f"{type(error).__name__}: {error}"
            log.error(
                "the consumers could not start (%s); the API serves meanwhile; trying again in %.0f s",
                watch.not_consuming,
                retry_in,
            )
            try:
                await broker.stop()  # what a start half done left running
            except Exception as stopping:
                log.warning("stopping what the failed start left: %s: %s", type(stopping).__name__, stopping)
            await asyncio.sleep(retry_in)
            retry_in = min(retry_in * 2, KAFKA_RETRY_SECONDS[1])
    watch.not_consuming = None
    freeze_long_lived()  # as service_app does for the other services (newsflow_shared.heap)
    if keep := settings.dead_letter_keep:  # asked of Kafka once it answers
        await warn_if_kept_shorter_than_the_topic(settings, keep)


class Store:
    """Writes a batch in one transaction, then announces each stored article."""

    def __init__(self, settings: StorageSettings, stage: Stage) -> None:
        self.settings = settings
        self.stage = stage
        self.repository: ArticleRepository | None = None

    async def handle(self, deliveries: list[Delivery]) -> list[Output]:
        valid, outputs = self.stage.decode_each(deliveries, EnrichedArticle)
        if not valid:
            return outputs
        assert self.repository is not None, "the lifespan opens the database before consuming"
        # A database failure raises: the stage retries the batch, or isolates the article the database refuses.
        stored = {article.id: article for article in await self.repository.store([a for _, a in valid])}
        # Every record is answered: two copies of one article in a batch are both announced, with the
        # stored record (the later copy wins), so that whoever sent the earlier one hears back too.
        outputs += [
            Emit.following(delivery, self.settings.topic_stored, stored[article.id], article.id)
            for delivery, article in valid
        ]
        return outputs


def _say_if_it_failed(task: asyncio.Task[None]) -> None:
    """The consumers' start ended in an error of its own: said, rather than left to a task no one awaits."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("storage's consumers will not start: %s: %s", type(error).__name__, error, exc_info=error)


def create_app(settings: StorageSettings | None = None) -> FastAPI:
    settings = settings or StorageSettings()
    stage = Stage.for_service(settings, SERVICE)
    broker = stage.broker
    service = Store(settings, stage)
    stage.consume(settings.topic_enriched, service.handle)
    declare_outputs(stage, settings.topic_stored)
    # The web page's copy of the dead letters.
    keeper = DeadLetterKeeper()
    stage.read_dead_letters("dlq", keeper.handle)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await upgrade(settings.database_url, wait=120)
        engine = make_engine(settings.database_url)
        service.repository = app.state.repository = ArticleRepository(engine)
        stage.depends_on("database", lambda: ping_database(engine))
        keeper.store = app.state.dead_letters = DeadLetterStore(engine)
        claims = repeat_every(60, partial(release_lapsed_claims, keeper.store), "give back lapsed re-drive claims")
        upkeep = [asyncio.create_task(claims, name="lapsed re-drive claims")]
        if keep := settings.dead_letter_keep:
            pruning = repeat_every(3600, partial(prune_settled, keeper.store, keep), "delete settled dead letters")
            upkeep.append(asyncio.create_task(pruning, name="prune dead letters"))
        starting = asyncio.create_task(consume_once_kafka_answers(broker, stage.watch, settings), name="consumers")
        starting.add_done_callback(_say_if_it_failed)
        upkeep.append(starting)
        try:
            if open_to_others(settings):
                log.warning(
                    "the query API listens on %s with no STORAGE_API_TOKEN: anyone who reaches port %d reads every"
                    " article and can re-drive dead letters; set STORAGE_API_TOKEN (openssl rand -hex 32)",
                    settings.storage_api_host,
                    settings.storage_api_port,
                )
            yield
        finally:
            for task in upkeep:
                task.cancel()
                with contextlib.suppress(BaseException):  # its own failure must not skip what follows
                    await task
            await broker.stop()
            await engine.dispose()

    app = FastAPI(
        title="Newsflow storage",
        version=__version__,
        description="Stored, enriched news articles: look up, search, filter and count.",
        lifespan=lifespan,
    )
    app.state.broker = broker
    app.state.watch = stage.watch  # the page says why a re-drive cannot be sent while the consumers wait for Kafka
    add_routes(app, settings)
    add_web(app, settings)
    return app
