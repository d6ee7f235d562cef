from newsflow_shared.service import serve
from newsflow_shared.settings import settings_from_environment

from .settings import CleanupSettings

# Guarded: a spawned worker process imports this module again and must not start a second server.
if __name__ == "__main__":
    serve("newsflow_cleanup.app:create_app", settings_from_environment(CleanupSettings, service="cleanup"))
