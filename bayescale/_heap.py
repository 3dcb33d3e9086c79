"""Hand the C heap's free pages back to the operating system during long CPU programs.

XLA's CPU threads allocate and free temporary buffers at every gradient evaluation, and glibc
keeps much of what they free: a fit of 3,000 groups (90,000 runs) grew by about 17 MB per second
of sampling and held 2.05 GB resident when it ended, 0.89 GB after ``malloc_trim``
(benchmarks/README.md, "Memory of many-group fits"). Left alone, a fit of 10,000 groups ran out
of a 23 GB machine's memory before it finished.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """Return glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


def release_free_memory() -> None:
    """Return the C heap's free pages to the system; nothing where the C library cannot."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
