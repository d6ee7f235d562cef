"""Keeping Python's garbage collector off what a service loads once and keeps for its whole life.

The cyclic collector's full pass walks every container object the process holds. A classify replica
holds ~930,000 of them once its model is compiled (torch, transformers, the compiler's graphs), and one
full pass over them costs ~275 ms of CPU on a 2-core Xeon. The stages' own allocations (records,
contracts, JSON) set off such a pass every few hundred articles: in the whole pipeline that was
~0.8 ms of classify's CPU per article (1.7 ms with two replicas, each paying its own), its whole
excess over the bare model loop (``bench/classify.py`` prints classify's CPU by thread). Objects that
live as long as the process cannot be cyclic garbage worth finding, so a service freezes them once it
has loaded them: the collector then walks only what was made since.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def freeze_long_lived() -> int:
    """Collect once, then move every object still alive out of the collector's sight for good (``gc.freeze``).

    Call it where a service has loaded what it keeps (after start-up, after a model is compiled); calling it
    again later freezes what was loaded since. Returns how many objects are frozen now. What a frozen object
    holds is still freed by reference counting; only a reference cycle among frozen objects would stay.
    """
    started = time.thread_time()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info(
        "froze %d long-lived objects out of the garbage collector's passes (%.0f ms)",
        frozen,
        (time.thread_time() - started) * 1000,
    )
    return frozen
