"""Scaling laws: the `Law` spec and the registry of built-in laws."""

from __future__ import annotations

from bayescale.errors import SpecError
from bayescale.laws._law import POOLINGS, SUPPORTS, Law, Param, Prior
from bayescale.laws.builtin import CHINCHILLA, POWER

LAWS: dict[str, Law] = {law.name: law for law in (POWER, CHINCHILLA)}


def get_law(law: str | Law) -> Law:
    """Return the law registered under ``law``, or ``law`` itself when it is a `Law`.

    Raises
    ------
    SpecError
        If no law of that name is registered.
    """
    if isinstance(law, Law):
        return law
    if isinstance(law, str) and law in LAWS:
        return LAWS[law]
    raise SpecError(f"unknown law {law!r}; known laws are {sorted(LAWS)}, or pass a Law object.")


def register_law(law: Law, *, overwrite: bool = False) -> Law:
    """Add a user law to the registry so that specs, the CLI and saved fits can name it.

    Raises
    ------
    SpecError
        If a different law already holds that name and ``overwrite`` is False.
    """
    if law.name in LAWS and LAWS[law.name] is not law and not overwrite:
        raise SpecError(
            f"a law named {law.name!r} is already registered; pick another name or pass "
            "overwrite=True."
        )
    law.check()
    LAWS[law.name] = law
    return law


__all__ = ["LAWS", "POOLINGS", "SUPPORTS", "Law", "Param", "Prior", "get_law", "register_law"]
