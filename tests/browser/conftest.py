"""A storage service with the web page, served on a free port, and a headless Chromium to drive it.

The app runs in a thread of its own with FastStream's in-memory broker (re-drives land in a list),
on a SQLite file seeded with the seed article as cleanup cleans it, a hostile article and dead letters.
Chromium is Debian's (/usr/bin/chromium; `.ci/run` installs it): Playwright's own download is not used.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn
from faststream.kafka import TestKafkaBroker

from newsflow_cli.local_kafka import free_port
from newsflow_storage.app import create_app
from newsflow_storage.settings import StorageSettings

from .. import webdata

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Served:
    url: str
    redriven: list[bytes] = field(default_factory=list)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    port = free_port()
    db = tmp_path_factory.mktemp("browser") / "web.db"
    settings = StorageSettings(
        database_url=f"sqlite+aiosqlite:///{db}", kafka_bootstrap_servers="127.0.0.1:9", log_level="WARNING"
    )
    app = create_app(settings)
    result = Served(url=f"http://127.0.0.1:{port}")

    @app.state.broker.subscriber("articles.raw", group_id="browser-test-raw")
    async def _raw(body: bytes) -> None:
        result.redriven.append(body)

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))

    async def serve() -> None:
        await _seed(settings.database_url)
        async with TestKafkaBroker(app.state.broker):
            await server.serve()

    # A thread with its own event loop: Playwright's sync API and pytest-asyncio keep the main one.
    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    _wait_until_up(result.url)
    try:
        yield result
    finally:
        server.should_exit = True
        thread.join(timeout=30)


async def _seed(url: str) -> None:
    from newsflow_shared.db import make_engine, upgrade
    from newsflow_storage.dead_letters import DeadLetterStore
    from newsflow_storage.repository import ArticleRepository

    await upgrade(url)
    engine = make_engine(url)
    try:
        await ArticleRepository(engine).store([webdata.seed_article(), webdata.hostile_article()])
        # Three to re-drive, and one cut short that can only be set aside.
        letters = [webdata.dead_letter(i) for i in range(3)] + [webdata.dead_letter(3, stage="cleanup", truncated=True)]
        await DeadLetterStore(engine).keep(letters)
    finally:
        await engine.dispose()


def _wait_until_up(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the storage service did not answer at {url} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"browser tests need Debian's chromium at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
