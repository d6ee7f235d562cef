from newsflow_shared.service import serve
from newsflow_shared.settings import settings_from_environment

from .settings import StorageSettings

# Guarded: a spawned worker process imports this module again and must not start a second server.
if __name__ == "__main__":
    settings = settings_from_environment(StorageSettings, service="storage")
    serve(
        "newsflow_storage.app:create_app",
        settings,
        host=settings.storage_api_host,
        port=settings.storage_api_port,
        address_names=("STORAGE_API_HOST", "STORAGE_API_PORT"),
        kafka_first=False,  # the API serves what is stored while Kafka is away (app.consume_once_kafka_answers)
    )
