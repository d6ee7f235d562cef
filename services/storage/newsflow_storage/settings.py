import re
from datetime import timedelta

from pydantic import Field, SecretStr, field_validator

from newsflow_shared import ServiceSettings
from newsflow_shared.settings import MOST_RECORDS_A_BATCH, host_without_port

MIN_TOKEN_CHARACTERS = 16


class StorageSettings(ServiceSettings):
    """Environment of the storage service (see the README's configuration table)."""

    storage_api_host: str = Field(default="127.0.0.1", description="Where the query API listens.")

    @property
    def uses_database(self) -> bool:
        return True

    @property
    def topics_used(self) -> list[str]:
        # Not the stages' inputs that a re-drive sends to: only an operator's click needs those.
        return [self.topic_enriched, self.topic_stored, self.topic_dlq]

    @field_validator("storage_api_host")
    @classmethod
    def _a_host_without_its_port(cls, value: str) -> str:
        return host_without_port(value, "STORAGE_API_PORT")

    storage_api_port: int = Field(default=8080, ge=1, le=65535, description="Port of the query API (and /health).")
    storage_api_token: SecretStr | None = Field(
        default=None,
        description=f"When set, the API wants 'Bearer <token>': {MIN_TOKEN_CHARACTERS} characters or more.",
    )
    batch_max_records: int = Field(
        default=1000, ge=1, le=MOST_RECORDS_A_BATCH, description="Rows written per transaction."
    )
    storage_page_max: int = Field(default=200, ge=1, le=1000, description="Largest page the API returns.")
    storage_dead_letter_keep_days: float = Field(
        default=30,
        ge=0,
        le=36_500,  # a hundred years is for ever here; a bound, so a typo of many zeros is named at start
        description="Days the web page keeps a dead letter after it was re-driven or set aside; 0 keeps them all."
        " Waiting letters are kept until they are.",
    )

    @field_validator("storage_api_token")
    @classmethod
    def _hard_to_guess(cls, token: SecretStr | None) -> SecretStr | None:
        """The Kubernetes manifest's placeholder ("change-me") was taken as the token: a guessable key to the API
        and the dead-letter re-drive. A token that short is a placeholder or a password, not a random key."""
        if token is not None and len(token.get_secret_value()) < MIN_TOKEN_CHARACTERS:
            raise ValueError(
                f"the token has {len(token.get_secret_value())} characters; use {MIN_TOKEN_CHARACTERS} or more random"
                " ones (openssl rand -hex 32), or leave STORAGE_API_TOKEN unset for an API open to all"
            )
        if token is not None and not re.fullmatch(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?", token.get_secret_value()):
            # An HTTP header carries ASCII: a client sends "é" as bytes the server reads as two other characters, so
            # such a token never matched a header, though the web page's login took it. Spaces inside are fine.
            raise ValueError(
                "the token holds a control character, a character outside ASCII or a space at an end, which an HTTP "
                "header cannot carry as it is; use letters, digits and punctuation (openssl rand -hex 32)"
            )
        return token

    @property
    def dead_letter_keep(self) -> timedelta | None:
        """How long a settled dead letter is kept; None: for ever (``STORAGE_DEAD_LETTER_KEEP_DAYS=0``)."""
        return timedelta(days=self.storage_dead_letter_keep_days) if self.storage_dead_letter_keep_days else None
