"""A job's ``environment``: ``${VAR}`` references expanded on the worker, at run time only.

The registry keeps the unexpanded form; values that came from ``${VAR}`` are secrets and
are masked wherever the job's log, progress or result would show them. A reference to a
variable the worker does not set fails the job (``UnsetVariable``) unless it gives a default
(``${VAR:-default}``); ``$$`` is a literal ``$``. Values of the ordinary variables in
``NOT_SECRET`` are not masked.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from trainq.errors import UnsetVariable
from trainq.inputs.text import nul_problem

_REFERENCE = re.compile(r"\$\$|\$\{(?P<braced>\w+)(?::-(?P<default>[^}]*))?\}|\$(?P<bare>\w+)")
MASK = "***"
#: Environment variable names as POSIX defines them (``A=B`` would break the job at run time).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NAME_RULE = "use letters, digits and '_', not starting with a digit"
#: Variables every machine sets to ordinary values (``/root``, ``/usr/bin``...): expanded, never masked.
NOT_SECRET = frozenset(
    {"HOME", "PATH", "USER", "LOGNAME", "PWD", "SHELL", "LANG", "LC_ALL", "TMPDIR", "HOSTNAME", "TERM", "TZ"}
)


def value_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a variable's value, else None. Only a string can: YAML and JSON read an
    unquoted ``1.10`` as 1.1, ``007`` as 7, ``0022`` as 18 and ``false`` as a boolean, and re-printing
    those would hand the job another value than the file shows."""
    if isinstance(value, str):
        return nul_problem(value)
    if value is None:
        read = "null"
    elif isinstance(value, bool):
        read = f"the boolean {json.dumps(value)}"
    elif isinstance(value, (int, float)):
        read = f"the number {value}"
    elif isinstance(value, datetime.date):
        read = f"the date {value.isoformat()}"
    else:
        read = "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else "a value"
    return f"read as {read}, not a string; quote the value"


def expand(
    environment: Mapping[str, str], source: Mapping[str, str] | None = None, worker: str = "this worker"
) -> tuple[dict[str, str], list[str]]:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``$VAR`` in each value from ``source`` (os.environ).

    Returns the expanded variables and the secret values (those that came from references,
    longest first). Raises UnsetVariable, naming ``worker``, for a reference with no value or default.
    """
    source = os.environ if source is None else source
    secrets: set[str] = set()
    expanded = {}
    for name, value in environment.items():

        def lookup(match: re.Match[str], name: str = name) -> str:
            variable, default = match.group("braced") or match.group("bare"), match.group("default")
            if variable is None:
                return "$"  # ``$$``: a literal dollar sign
            found = source.get(variable)
            if default is not None and not found:
                return default
            if found is None:
                raise UnsetVariable(variable, name, worker)
            if found and variable not in NOT_SECRET:
                secrets.add(found)
            return found

        expanded[name] = _REFERENCE.sub(lookup, str(value))
    return expanded, sorted(secrets, key=len, reverse=True)


@lru_cache(maxsize=64)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str]:
    """Whole-token occurrences of any of ``secrets``: not inside a longer word."""
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, secrets)) + r")(?!\w)")


def mask(text: str, secrets: list[str]) -> str:
    """``text`` with every whole-token occurrence of a secret value replaced by ``***``."""
    return _pattern(tuple(secrets)).sub(MASK, text) if secrets else text


def masked(value: Any, secrets: list[str]) -> Any:
    """A JSON-like ``value`` (metrics, a result) with secrets masked in every string and key.

    A number equal to a numeric secret (``tok=12345`` parsed as 12345.0) is masked too.
    """
    if not secrets:
        return value
    if isinstance(value, str):
        return mask(value, secrets)
    if isinstance(value, dict):
        return {masked(k, secrets): masked(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [masked(v, secrets) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value in _numbers(tuple(secrets)):
        return MASK
    return value


@lru_cache(maxsize=64)
def _numbers(secrets: tuple[str, ...]) -> frozenset[float]:
    """The secrets that read as finite numbers."""
    numbers = set()
    for secret in secrets:
        try:
            number = float(secret)
        except ValueError:
            continue
        if math.isfinite(number):
            numbers.add(number)
    return frozenset(numbers)


@contextmanager
def applied(variables: Mapping[str, str]) -> Iterator[None]:
    """Set ``variables`` in this process's environment for the block, then restore it."""
    saved = {name: os.environ.get(name) for name in variables}
    try:  # a name the OS refuses stops the update midway: what it set is restored too
        os.environ.update(variables)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
