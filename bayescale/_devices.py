"""CPU devices for parallel chains, chosen before JAX starts its backends."""

from __future__ import annotations

import os

HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"
MIN_HOST_DEVICES = 4  # the default number of chains


def use_cpu_cores_for_chains() -> None:
    """Give XLA one CPU device per core (at least one per default chain).

    Chains then run in parallel, each at its own pace, instead of in lockstep on one device;
    their program is also much cheaper to trace and compile. Only the CPU platform is affected,
    and nothing changes when ``XLA_FLAGS`` already names a device count or JAX has started.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if HOST_DEVICES_FLAG in flags or _jax_started():
        return
    count = max(MIN_HOST_DEVICES, os.cpu_count() or 1)
    os.environ["XLA_FLAGS"] = f"{flags} {HOST_DEVICES_FLAG}={count}".strip()


def _jax_started() -> bool:
    """Whether JAX has started its backends (after which XLA_FLAGS no longer matter)."""
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # a JAX without this internal: setting flags is harmless
        return False
