"""A job's ``environment``: ``${VAR}`` references expanded on the worker, at run time only.

The registry keeps the unexpanded form; values that came from ``${VAR}`` are secrets and
are masked wherever the job's log would show them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

_REFERENCE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
MASK = "***"


def expand(
    environment: Mapping[str, str], source: Mapping[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """Expand ``${VAR}`` in each value from ``source`` (the worker's environment).

    Returns the expanded variables and the secret values (those that came from references).
    """
    source = os.environ if source is None else source
    secrets: list[str] = []

    def lookup(match: re.Match[str]) -> str:
        value = source.get(match.group(1) or match.group(2), "")
        if value:
            secrets.append(value)
        return value

    expanded = {name: _REFERENCE.sub(lookup, str(value)) for name, value in environment.items()}
    return expanded, sorted(set(secrets), key=len, reverse=True)


def mask(text: str, secrets: list[str]) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


@contextmanager
def applied(variables: Mapping[str, str]) -> Iterator[None]:
    """Set ``variables`` in this process's environment for the block, then restore it."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
