from newsflow_shared.service import serve

from .settings import ClassifySettings

serve("newsflow_classify.app:create_app", ClassifySettings())
