"""A stage's outputs sent straight to aiokafka land as FastStream's publish put them, on real Kafka.

Same partition for each key (an article stays in its partition on every hop), same value, same headers (but the
random ``correlation_id`` FastStream adds), each partition in publish order, records larger than a producer batch,
and the published count in ``/metrics``. FastStream's publish is what a stage uses when spans are recorded, so both
are compared here record for record.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from aiokafka.admin import NewTopic

from newsflow_shared import (
    DeadLetter,
    Delivery,
    Emit,
    IngestedArticle,
    MalformedMessage,
    ServiceSettings,
    Stage,
    kafka_clients,
    make_broker,
)
from newsflow_shared import broker as broker_module
from newsflow_shared import stage as stage_module
from newsflow_shared.delivery import TRACE_HEADER
from newsflow_shared.sending import producer_of

pytestmark = pytest.mark.kafka

PARTITIONS = 6


async def test_outputs_sent_past_faststream_land_as_its_publish_puts_them(kafka_bootstrap: str, monkeypatch) -> None:
    # Another test in this process may have set a tracer provider (there can be only one). With spans recorded the
    # broker gets FastStream's telemetry middleware (a span of its own in each traceparent) and Stage.publish takes
    # FastStream's path: here it runs as without a tracer.
    monkeypatch.setattr(stage_module, "recording", lambda: False)
    monkeypatch.setattr(broker_module, "recording", lambda: False)
    # Small producer batches, so that the larger outputs do not fit one.
    run = uuid.uuid4().hex[:8]
    direct_topic, one_by_one_topic = f"direct-{run}", f"faststream-{run}"
    settings = ServiceSettings(
        kafka_bootstrap_servers=kafka_bootstrap, kafka_producer_batch_bytes=8 * 1024, topic_dlq=f"dlq-{run}"
    )
    admin = kafka_clients.admin(settings)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(t, PARTITIONS, 1) for t in (direct_topic, one_by_one_topic, settings.topic_dlq)]
        )
    finally:
        await admin.close()

    stage = Stage(make_broker(settings, "cleanup"), settings, name="cleanup")
    assert producer_of(stage.broker) is None, "no producer before the broker connected"
    await stage.broker.connect()
    try:
        assert producer_of(stage.broker) is not None, "FastStream's producer is no longer where sending.py looks"
        outputs = _outputs(stage, direct_topic)
        await stage.publish(outputs)
        same_elsewhere = [replace(o, topic=one_by_one_topic) if isinstance(o, Emit) else o for o in outputs]
        await stage._publish_each([(output, stage.encode(output)) for output in same_elsewhere])
    finally:
        await stage.broker.stop()

    direct, one_by_one = await _read(settings, direct_topic), await _read(settings, one_by_one_topic)
    assert len(direct) == len(one_by_one) == 120
    for key, (partition, value, headers) in one_by_one.items():
        assert direct[key][0] == partition, f"{key} went to another partition"
        assert direct[key][1] == value
        assert direct[key][2] == {k: v for k, v in headers.items() if k != "correlation_id"}
    assert {partition for partition, _, _ in direct.values()} == set(range(PARTITIONS))
    dead_letters = await _read(settings, settings.topic_dlq, expect=2, keyed=False)
    [letter] = {value for _, value, _ in dead_letters.values()}  # the same dead letter, sent both ways
    assert DeadLetter.model_validate_json(letter).reason == "no"
    # Counted once acknowledged, by topic: the direct path's outputs and its dead letter (the other path is
    # FastStream's, counted by its own middleware).
    counted = {
        s.labels["topic"]: s.value
        for m in stage.metrics.registry.collect()
        for s in m.samples
        if s.name == "newsflow_published_records_total"
    }
    assert counted == {direct_topic: 120, settings.topic_dlq: 1}


def _outputs(stage: Stage, topic: str) -> list[Emit | DeadLetter]:
    # A dead letter has no key when its record had none: it goes to any partition of the DLQ.
    outputs: list[Emit | DeadLetter] = [stage.reject(Delivery(value=b"not json", topic="raw"), MalformedMessage("no"))]
    for n in range(120):
        # Sizes from a line to 20 KB, more than a producer batch of 8 KB holds.
        article = IngestedArticle(id=f"a{n}", text="Storm closes the harbour. " * (1 + n * 7 % 800), content_hash="h")
        headers = {TRACE_HEADER: f"trace-{n}", "traceparent": f"00-{n:032x}-{n + 1:016x}-01"}
        outputs.append(Emit(topic, article, article.id, headers))
    return outputs


async def _read(
    settings: ServiceSettings, topic: str, expect: int = 120, *, keyed: bool = True
) -> dict[str, tuple[int, bytes, dict[str, bytes]]]:
    """Each record by key (or by offset): partition, value, headers; each partition's keys must be in publish order."""
    consumer = kafka_clients.consumer(settings, topic, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records = {}
    try:
        while len(records) < expect:
            batches = await consumer.getmany(timeout_ms=5000)
            assert batches, f"only {len(records)} records arrived on {topic}"
            for part, batch in batches.items():
                if not keyed:
                    records.update(
                        {f"{r.partition}@{r.offset}": (r.partition, r.value, dict(r.headers)) for r in batch}
                    )
                    continue
                numbers = [int(r.key.decode()[1:]) for r in batch]
                assert numbers == sorted(numbers), f"partition {part.partition} out of publish order"
                records.update({r.key.decode(): (r.partition, r.value, dict(r.headers)) for r in batch})
    finally:
        await consumer.stop()
    return records
