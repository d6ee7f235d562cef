"""What every Newsflow service shares: contracts, settings, the broker, the stage runner, dead letters, logging."""

from .broker import make_broker
from .contracts import (
    SCHEMA_VERSION,
    CleanArticle,
    DeadLetter,
    EnrichedArticle,
    IngestedArticle,
    Lineage,
    RawArticle,
    Removal,
    SkippedArticle,
    StoredArticle,
    TopicScore,
)
from .delivery import REDRIVE_HEADER, REPLAY_HEADER, TRACE_HEADER, Delivery
from .errors import (
    ArticleTooLarge,
    EmptyArticle,
    InvalidArticle,
    KafkaSecurityError,
    MalformedMessage,
    NewsflowError,
    RejectedInput,
    TemporaryFailure,
    TopicsRefused,
)
from .kafka_security import KafkaSecuritySettings, security_for
from .logs import configure_logging
from .redrive import RedriveRecord, redrive_record
from .settings import ServiceSettings, Topics, settings_from_environment
from .stage import Emit, Stage
from .topics import ensure_topics, wait_for_kafka

__all__ = [
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
    "TopicsRefused",
    "configure_logging",
    "ensure_topics",
    "make_broker",
    "redrive_record",
    "security_for",
    "settings_from_environment",
    "wait_for_kafka",
]
