"""A real Prometheus scraping the running pipeline: every panel of the Grafana dashboard has data, no alert is
pending while the pipeline is healthy, and a stage whose process is gone is down by the alert's own expression.

The promtool scenarios (tests/unit/test_alert_rules.py) feed the rules series written by hand; here Prometheus reads
what the four services really serve, labelled as Kubernetes would (`namespace`, `pod`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from newsflow_cli.local_kafka import free_port

from .harness import Pipeline, article, isolated_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).parents[2]
NAMESPACE = "itest"
STAGES = ("ingest", "cleanup", "classify", "storage")


def prometheus_program() -> str:
    found = subprocess.run(
        [str(ROOT / "deploy/local/prometheus.sh"), "prometheus"], capture_output=True, text=True, timeout=300
    )
    assert found.returncode == 0, f"no Prometheus for this test: {found.stderr.strip()}"
    return found.stdout.strip()


def alert_rules() -> list[dict[str, Any]]:
    spec = yaml.safe_load((ROOT / "deploy/k8s/monitoring/alerts.yaml").read_text())["spec"]
    return [rule for group in spec["groups"] for rule in group["rules"]]


def dashboard_queries() -> dict[str, str]:
    """Each panel's queries, by "panel title #n", for the namespace this test scrapes."""
    dashboard = json.loads((ROOT / "deploy/grafana/newsflow-dashboard.json").read_text())
    return {
        f"{panel['title']} #{n}": target["expr"].replace("$namespace", NAMESPACE)
        for panel in dashboard["panels"]
        for n, target in enumerate(panel["targets"])
    }


class Prometheus:
    """A Prometheus server of its own, scraping ``targets`` (metrics URL by pod name) every second."""

    def __init__(self, folder: Path, targets: dict[str, str]) -> None:
        self.folder = folder
        self.port = free_port()
        rules = {"groups": [{"name": "newsflow", "interval": "1s", "rules": alert_rules()}]}
        (folder / "newsflow.rules.yml").write_text(yaml.safe_dump(rules))
        scrape = [
            {
                "targets": [url.removeprefix("http://").removesuffix("/metrics")],
                "labels": {"namespace": NAMESPACE, "pod": pod},
            }
            for pod, url in targets.items()
        ]
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": ["newsflow.rules.yml"],
            "scrape_configs": [{"job_name": "newsflow", "static_configs": scrape}],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.folder / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                prometheus_program(),
                f"--config.file={self.folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    async def ready(self, client: httpx.AsyncClient, timeout: float = 120.0) -> None:
        """Once Prometheus answers: it starts in a second on an idle machine, in many under a test run's load."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.folder / "prometheus.log").read_text()[-2000:]
                raise AssertionError(f"Prometheus exited ({self.process.returncode}): {log}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{self.url}/-/ready")).status_code == 200:
                    return
            assert asyncio.get_running_loop().time() < deadline, f"Prometheus not ready in {timeout:g}s"
            await asyncio.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)

    async def query(self, client: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
        answer = (await client.get(f"{self.url}/api/v1/query", params={"query": expr})).json()
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    async def until(self, client: httpx.AsyncClient, expr: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        """The query's result, once it has one."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (result := await self.query(client, expr)):
            assert asyncio.get_running_loop().time() < deadline, f"nothing for {expr} in {timeout:g}s"
            await asyncio.sleep(0.5)
        return result

    async def until_finite(self, client: httpx.AsyncClient, expr: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        """The query's result once a value in it is a number: a rate needs two scrapes after the change, and each
        target is scraped on its own clock (a busy classify answers a second late), so a quantile can be NaN at first.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            result = await self.query(client, expr)
            if any(math.isfinite(float(series["value"][1])) for series in result):
                return result
            assert asyncio.get_running_loop().time() < deadline, f"no number for {expr} in {timeout:g}s: {result}"
            await asyncio.sleep(0.5)


@pytest.fixture
async def scraped(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[tuple[Pipeline, Prometheus]]:
    env = isolated_env(kafka_bootstrap, f"sqlite+aiosqlite:///{tmp_path}/news.db") | {"CLASSIFY_COMPILE": "off"}
    pipeline = Pipeline(env)
    await pipeline.start()
    # Pods named as a Deployment's are: the alerts read the stage from the name.
    targets = {f"newsflow-{stage}-5d8f7c9b4-x2x7q": pipeline.metrics_url(stage) for stage in STAGES}
    prometheus = Prometheus(tmp_path, targets)
    prometheus.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            await prometheus.ready(client)
            # Every target scraped before the articles come: rates and quantiles need the series' start.
            await prometheus.until(client, f'count(up{{namespace="{NAMESPACE}"}} == 1) == {len(STAGES)}', timeout=180)
        yield pipeline, prometheus
    finally:
        prometheus.stop()
        await pipeline.stop()


async def test_the_dashboard_and_the_alerts_on_a_real_prometheus(scraped: tuple[Pipeline, Prometheus]) -> None:
    pipeline, prometheus = scraped
    good = [
        article(id=f"prom-{i}", title=f"Harbour report {i}", text=f"The harbour board met on day {i} about the ferry.")
        for i in range(40)
    ]
    bad = [article(id="prom-bad", title="No text at all")]  # ingest dead-letters it: the DLQ panels have data
    results = await pipeline.run([*good, *bad])
    assert sorted(kind for kind, _ in results.values()).count("stored") == len(good)

    async with httpx.AsyncClient(timeout=10) as client:
        # Scraped after the last article was stored. Storage's scrape says nothing of the other targets' scrapes.
        await prometheus.until(client, f"sum(newsflow_ingest_to_stored_seconds_count) >= {len(good)}")
        namespaces = (
            await client.get(
                f"{prometheus.url}/api/v1/label/namespace/values",
                params={"match[]": "newsflow_consumer_last_progress_timestamp_seconds"},
            )
        ).json()["data"]
        assert namespaces == [NAMESPACE]  # the dashboard's namespace selector
        for panel, expr in dashboard_queries().items():
            assert await prometheus.until_finite(client, expr), panel

        # Healthy: no alert pending or firing, and each rule's expression finds nothing.
        assert await prometheus.query(client, "ALERTS") == []
        for rule in alert_rules():
            assert await prometheus.query(client, rule["expr"]) == [], rule["alert"]

        # Classify's process gone: its target fails, and the down alert's expression names it in this namespace.
        assert pipeline.supervisor is not None
        await pipeline.supervisor.kill("classify")
        [rule] = [r for r in alert_rules() if r["alert"] == "NewsflowStageDown"]
        down = await prometheus.until(client, rule["expr"], timeout=30)
        assert [series["metric"] for series in down] == [{"namespace": NAMESPACE, "stage": "classify"}]
        pending = await prometheus.until(client, 'ALERTS{alertname="NewsflowStageDown"}', timeout=30)
        assert [(a["metric"]["stage"], a["metric"]["alertstate"]) for a in pending] == [("classify", "pending")]
