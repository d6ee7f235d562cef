"""The shared package's public surface is deliberate: a change to it shows up here first."""

import newsflow_shared


def test_public_names_are_pinned() -> None:
    assert set(newsflow_shared.__all__) == {
        "REDRIVE_HEADER",
        "REPLAY_HEADER",
        "SCHEMA_VERSION",
        "TRACE_HEADER",
        "ArticleTooLarge",
        "CleanArticle",
        "DeadLetter",
        "Delivery",
        "Emit",
        "EmptyArticle",
        "EnrichedArticle",
        "IngestedArticle",
        "InvalidArticle",
        "KafkaSecurityError",
        "TopicsRefused",
        "KafkaSecuritySettings",
        "Lineage",
        "MalformedMessage",
        "NewsflowError",
        "RawArticle",
        "RedriveRecord",
        "RejectedInput",
        "Removal",
        "ServiceSettings",
        "SkippedArticle",
        "Stage",
        "StoredArticle",
        "TemporaryFailure",
        "TopicScore",
        "Topics",
        "configure_logging",
        "ensure_topics",
        "make_broker",
        "redrive_record",
        "security_for",
        "settings_from_environment",
        "wait_for_kafka",
    }
    for name in newsflow_shared.__all__:
        assert getattr(newsflow_shared, name) is not None
