"""Child processes that do not outlive the `stream run` that started them.

A supervisor killed with SIGKILL runs no clean-up: its workers would go on holding the Edge
gallery's lock (the next run on that folder then fails to open it) and its camera processes
would go on reading their sources. On Linux the kernel can signal a child when its parent dies
(``prctl(PR_SET_PDEATHSIG)``); a worker handles SIGTERM by draining and closing its gallery.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent dies; exit at once
    when ``parent_pid`` already died (the parent may die before this call). False where the
    platform has no such call (then only a clean stop ends the children)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        return False
    if os.getppid() != parent_pid:  # re-parented: the parent is gone already
        os.kill(os.getpid(), signum)
    return True
