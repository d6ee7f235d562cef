"""Processes that end when they should: with their parent, and soon after SIGTERM."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1

PARENT_PID_VARIABLE = "NEWSFLOW_PARENT_PID"
"""Set by ``newsflow run`` and ``process`` for the services they start: those die with it."""


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


def stay_with_parent() -> None:
    """For a service started by ``newsflow run`` or ``process``: die with it, and exit now if it is gone already.

    The check after the ``prctl`` closes the race of a parent killed while this process was still
    importing its modules, before it could ask for the signal.
    """
    expected = os.environ.get(PARENT_PID_VARIABLE)
    if not expected:
        return
    # SIGKILL, not SIGTERM: a parent that died abruptly took the local broker with it, so a graceful stop could
    # commit nothing, and a process between states (a model loading in a thread, the interpreter finalising) could
    # not act on SIGTERM at all: classify once hung for good in a progress bar's destructor after `process` was killed.
    die_with_parent(signal.SIGKILL)
    if str(os.getppid()) != expected:
        sys.exit(f"the process that started this service ({expected}) is gone; exiting")
