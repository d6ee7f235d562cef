from newsflow_shared.service import serve

from .settings import IngestSettings

# Guarded: a spawned worker process imports this module again and must not start a second server.
if __name__ == "__main__":
    serve("newsflow_ingest.app:create_app", IngestSettings())
