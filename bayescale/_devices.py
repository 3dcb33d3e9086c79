"""XLA's CPU settings for sampling, chosen before JAX starts its backends."""

from __future__ import annotations

import os
import re
from importlib import metadata

HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"
MIN_HOST_DEVICES = 4  # the default number of chains

YNN_FUSIONS_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
# The first jaxlib whose CPU compiler fuses operations into YNNPACK kernels by default.
YNN_FUSIONS_DEFAULT_SINCE = (0, 10, 2)


def use_cpu_cores_for_chains() -> None:
    """Give XLA one CPU device per core (at least one per default chain).

    Chains then run in parallel, each at its own pace, instead of in lockstep on one device;
    their program is also much cheaper to trace and compile. Only the CPU platform is affected,
    and nothing changes when ``XLA_FLAGS`` already names a device count or JAX has started.
    """
    count = max(MIN_HOST_DEVICES, os.cpu_count() or 1)
    _add_flag(HOST_DEVICES_FLAG, str(count))


def turn_off_ynn_fusions() -> None:
    """Compile CPU programs without XLA's YNNPACK fusions, where jaxlib uses them by default.

    Their thread pool held on to memory for each task it ran until the program returned: a
    sampler's loop at 10,000 groups grew by about 8 MB per iteration, which its 2,000 iterations
    could not afford on a 23 GB machine; without the fusions its memory stayed flat, at the same
    speed (benchmarks/README.md). Nothing changes when ``XLA_FLAGS`` already sets these fusions,
    the installed jaxlib predates them, or JAX has started.
    """
    if _jaxlib_version() >= YNN_FUSIONS_DEFAULT_SINCE:
        _add_flag(YNN_FUSIONS_FLAG, "")


def _add_flag(flag: str, value: str) -> None:
    """Append ``flag=value`` to ``XLA_FLAGS`` unless it names ``flag`` or JAX has started."""
    flags = os.environ.get("XLA_FLAGS", "")
    if flag in flags or _jax_started():
        return
    os.environ["XLA_FLAGS"] = f"{flags} {flag}={value}".strip()


def _jaxlib_version() -> tuple[int, ...]:
    """Return the installed jaxlib's (major, minor, patch), zeros when it cannot be read."""
    try:
        version = metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
        return (0, 0, 0)
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def _jax_started() -> bool:
    """Whether JAX has started its backends (after which XLA_FLAGS no longer matter)."""
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # a JAX without this internal: setting flags is harmless
        return False
