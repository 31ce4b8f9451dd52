"""What every benchmark shares: the glibc malloc settings of NOTES.md "CPU speed traps".

Without them a large batch hands its activation buffers back to the OS after every forward
pass and spends most of its time in page faults; a benchmark re-executes itself with them set.
"""

from __future__ import annotations

import os
import sys

MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "4294967296",
    "MALLOC_TRIM_THRESHOLD_": "4294967296",
    "MALLOC_TOP_PAD_": "536870912",
}


def ensure_malloc_env() -> None:
    """Re-execute the running script with MALLOC_ENV unless it is already in force."""
    if any(os.environ.get(key) != value for key, value in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})
