"""What runs in cleanup's worker process: one article's own repairs and language, under a CPU budget.

Module-level functions, so that the spawned child can import them (see
:class:`newsflow_shared.budget.BudgetedWorker`). The language detectors load in the child only.
"""

from __future__ import annotations

from functools import partial

from newsflow_shared import CleanArticle, Delivery, IngestedArticle
from newsflow_shared.budget import BudgetedWorker

from .language import LanguageDetector
from .logic import clean
from .settings import CleanupSettings

State = tuple[LanguageDetector, CleanupSettings]


def load_state(settings: CleanupSettings) -> State:
    return LanguageDetector.for_settings(settings), settings


def clean_message(state: State, value: bytes) -> CleanArticle:
    """Parse an ``articles.ingested`` message and clean it; bad input raises :class:`RejectedInput`."""
    detector, settings = state
    return clean(Delivery(value=value).decode(IngestedArticle), detector, settings)


def cleanup_worker(settings: CleanupSettings) -> BudgetedWorker[State, bytes, CleanArticle]:
    return BudgetedWorker(
        partial(load_state, settings), clean_message, cpu_seconds=settings.cleanup_record_cpu_seconds, name="cleanup"
    )
