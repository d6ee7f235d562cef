"""Processes that end when they should: with their parent, and soon after SIGTERM."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies, even by SIGKILL.

    Without it a service started by ``newsflow run`` or a cleanup worker outlives a parent that
    was killed, holding ports and consuming from Kafka as an orphan. Returns False where the
    kernel offers no such thing (not Linux).
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
