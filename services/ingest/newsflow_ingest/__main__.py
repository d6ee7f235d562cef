from newsflow_shared.service import serve

from .settings import IngestSettings

serve("newsflow_ingest.app:create_app", IngestSettings())
