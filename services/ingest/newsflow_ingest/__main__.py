from newsflow_shared.service import serve
from newsflow_shared.settings import settings_from_environment

from .settings import IngestSettings

# Guarded: a spawned worker process imports this module again and must not start a second server.
if __name__ == "__main__":
    serve("newsflow_ingest.app:create_app", settings_from_environment(IngestSettings, service="ingest"))
