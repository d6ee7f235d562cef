from newsflow_shared.logs import configure_logging, say_at_start
from newsflow_shared.service import serve
from newsflow_shared.settings import EXIT_CONFIG, settings_from_environment

from .settings import ClassifySettings, apply_openmp_settings

# Guarded: a spawned worker process imports this module again and must not start a second server.
if __name__ == "__main__":
    settings = settings_from_environment(ClassifySettings, service="classify")
    apply_openmp_settings(settings)  # before the app imports torch
    from .loader import model_problem  # imports torch: after the line above

    if problem := model_problem(settings.classify_model):
        configure_logging("classify", settings.log_level, settings.log_format)
        say_at_start(f"CLASSIFY_MODEL={settings.classify_model!r} cannot be loaded: {problem}")
        raise SystemExit(EXIT_CONFIG)
    serve("newsflow_classify.app:create_app", settings)
