from pydantic import Field, SecretStr

from newsflow_shared import ServiceSettings
from newsflow_shared.settings import MOST_RECORDS_A_BATCH


class StorageSettings(ServiceSettings):
    """Environment of the storage service (see the README's configuration table)."""

    storage_api_host: str = Field(default="127.0.0.1", description="Where the query API listens.")
    storage_api_port: int = Field(default=8080, description="Port of the query API (and /health).")
    storage_api_token: SecretStr | None = Field(default=None, description="When set, the API wants 'Bearer <token>'.")
    batch_max_records: int = Field(
        default=1000, ge=1, le=MOST_RECORDS_A_BATCH, description="Rows written per transaction."
    )
    storage_page_max: int = Field(default=200, ge=1, le=1000, description="Largest page the API returns.")
