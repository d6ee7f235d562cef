from newsflow_shared.service import serve

from .settings import CleanupSettings

# Guarded: a spawned worker process imports this module again and must not start a second server.
if __name__ == "__main__":
    serve("newsflow_cleanup.app:create_app", CleanupSettings())
