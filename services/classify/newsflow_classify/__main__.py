import sys

from newsflow_shared.service import serve
from newsflow_shared.settings import EXIT_CONFIG, settings_from_environment

from .settings import ClassifySettings, apply_openmp_settings

# Guarded: a spawned worker process imports this module again and must not start a second server.
if __name__ == "__main__":
    settings = settings_from_environment(ClassifySettings)
    apply_openmp_settings(settings)  # before the app imports torch
    from .loader import model_problem  # imports torch: after the line above

    if problem := model_problem(settings.classify_model):
        print(f"error: CLASSIFY_MODEL={settings.classify_model!r} cannot be loaded: {problem}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    serve("newsflow_classify.app:create_app", settings)
