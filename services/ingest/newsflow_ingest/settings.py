from pydantic import Field

from newsflow_shared import ServiceSettings


class IngestSettings(ServiceSettings):
    """Environment of the ingest service (see the README's configuration table)."""

    ingest_max_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1024,
        description="Largest accepted article (text or HTML, UTF-8 bytes); bigger ones are dead-lettered.",
    )
    ingest_max_metadata_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest accepted metadata (with unknown top-level fields), as JSON; bigger is dead-lettered.",
    )
    ingest_dedupe: bool = Field(default=True, description="Skip exact re-sends of an article already passed on.")

    @property
    def uses_database(self) -> bool:
        return self.ingest_dedupe

    @property
    def topics_used(self) -> list[str]:
        return [self.topic_raw, self.topic_ingested, self.topic_skipped, self.topic_dlq]
