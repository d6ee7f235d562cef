from newsflow_shared.service import serve
from newsflow_shared.settings import settings_from_environment

from .settings import ClassifySettings, apply_openmp_settings

# Guarded: a spawned worker process imports this module again and must not start a second server.
if __name__ == "__main__":
    settings = settings_from_environment(ClassifySettings)
    apply_openmp_settings(settings)  # before the app imports torch
    serve("newsflow_classify.app:create_app", settings)
