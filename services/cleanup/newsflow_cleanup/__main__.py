from newsflow_shared.service import serve

from .settings import CleanupSettings

serve("newsflow_cleanup.app:create_app", CleanupSettings())
