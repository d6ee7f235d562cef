import uvicorn

from newsflow_shared.kafka_clients import require_kafka

from .settings import StorageSettings

settings = StorageSettings()
require_kafka(settings)
uvicorn.run(
    "newsflow_storage.app:create_app",
    factory=True,
    host=settings.storage_api_host,
    port=settings.storage_api_port,
    log_level=settings.log_level.lower(),
    log_config=None,
    access_log=False,
    timeout_graceful_shutdown=35,
)
