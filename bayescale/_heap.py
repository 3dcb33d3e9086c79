"""Hand the C heap's free pages back to the operating system during long CPU programs.

XLA's CPU threads allocate and free buffers throughout a fit, and glibc keeps much of what they
free. A fit of 3,000 groups (90,000 runs, 4 chains x 60 / 60) peaked at 2.07 GB resident and held
1.96 GB when it ended, 0.77 GB after ``malloc_trim``; releasing at the sampler's check-ins, it
peaked at 1.41 GB and ended at 0.80 GB (``benchmarks/memory.py``, benchmarks/README.md).
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
